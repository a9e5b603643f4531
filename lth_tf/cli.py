"""What every command of lth_tf shares: flags generated from the config dataclasses, help and version, and
one error policy. A user's mistake prints one line (`error: ...`) and exits 2, before TensorFlow loads
where it can; Ctrl-C prints where the run stopped and exits 130; a full disk names the file and exits 1.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import signal
import sys
from typing import Callable

from absl import app, flags

import lth_tf
from lth_tf.config import SECTIONS, ExecutorConfig, RunConfig
from lth_tf.errors import Interrupted, UserError

FLAGS = flags.FLAGS
EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


def _fields():
    for section in SECTIONS:
        yield from dataclasses.fields(type(getattr(RunConfig(), section)))


def define_config_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    _define(_fields(), flag_values)


def define_executor_flags() -> None:
    _define(dataclasses.fields(ExecutorConfig), FLAGS)


def _define(fields, flag_values: flags.FlagValues) -> None:
    definers = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
                str: flags.DEFINE_string}
    for f in fields:
        if f.name in flag_values:
            continue
        choices = f.metadata.get("choices")
        help_text = f.metadata["help"] + (f" One of: {', '.join(choices)}." if choices else "")
        definers[type(f.default)](f.name, f.default, help_text, flag_values=flag_values,
                                  module_name="lth_tf settings")


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> RunConfig:
    sections = {}
    for section in SECTIONS:
        klass = type(getattr(RunConfig(), section))
        sections[section] = klass(**{f.name: flag_values[f.name].value for f in dataclasses.fields(klass)})
    return RunConfig(**sections)


def executor_from_flags() -> ExecutorConfig:
    return ExecutorConfig(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(ExecutorConfig)})


def config_from_args(args: list[str], where: str) -> RunConfig:
    """The settings that `args` (flags, --flagfile=...) give on top of the defaults, parsed apart from this
    command's own flags (a sweep holds many runs). Errors name `where`."""
    values = flags.FlagValues()
    define_config_flags(values)
    try:
        values(["lth_tf", *args])
    except flags.Error as e:
        raise UserError(f"{where}: {str(e).splitlines()[0]}") from None
    return config_from_flags(values)


def _flag_name(arg: str, known: Callable[[str], bool]) -> str | None:
    """The flag an argument sets ('--levels=3' -> 'levels', '--nofinetune' -> 'finetune'), or None."""
    if not arg.startswith("-") or arg.lstrip("-") == "":
        return None
    name = arg.lstrip("-").split("=", 1)[0]
    return name[2:] if name.startswith("no") and not known(name) and known(name[2:]) else name


def _flagfile_lines(path: str, seen: frozenset = frozenset()):
    """(the line, file, line number) for every flag a flagfile sets, following nested --flagfile lines as absl
    does (paths as written, from the working directory). Unreadable files are absl's to report."""
    if path in seen:
        return
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for number, line in enumerate(lines, 1):
        arg = line.strip()
        if arg.startswith("--flagfile="):
            yield from _flagfile_lines(arg.split("=", 1)[1], seen | {path})
        elif arg.startswith("-"):
            yield arg, path, number


def flag_overridden_by_flagfile(args: list[str], known: Callable[[str], bool] = lambda name: name in FLAGS
                                ) -> str | None:
    """Why `args` do not mean what they say, or None: a flag given before a --flagfile that sets it again is
    silently overridden by the file (absl applies arguments in order), so `--levels=10 --flagfile=imdb.cfg`
    runs the file's 20 levels."""
    given = {}
    for arg in args:
        if arg.startswith("--flagfile="):
            for line, path, number in _flagfile_lines(arg.split("=", 1)[1]):
                name = _flag_name(line, known)
                if name in given:
                    return (f"{given[name]} comes before {arg}, which sets it again "
                            f"({path} line {number}: {line}) and wins: put {given[name]} after the --flagfile")
        elif (name := _flag_name(arg, known)) is not None:
            given[name] = arg
    return None


def _usage(module: str, summary: str) -> str:
    return f"{summary}\n\nUsage: python -m {module} [--flag=value ...] [--flagfile=FILE]\n"


def _parser(module: str, summary: str) -> Callable[[list[str]], list[str]]:
    def parse(argv: list[str]) -> list[str]:
        args = argv[1:]
        if any(a in ("-h", "--help", "--helpshort", "-?") for a in args):
            try:
                print(_usage(module, summary))
                for name in FLAGS.flags_by_module_dict():  # the command's own flags and the settings
                    if name.startswith("lth_tf") and FLAGS.flags_by_module_dict()[name]:
                        print(FLAGS.module_help(name))
                sys.stdout.flush()
            except BrokenPipeError:  # `--help | head`
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        if "--version" in args:
            print(f"lth_tf {lth_tf.__version__}")
            sys.exit(0)
        overridden = flag_overridden_by_flagfile(args)
        if overridden:
            print(f"error: {overridden}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        try:
            rest = FLAGS(argv)
        except flags.Error as e:
            print(f"error: {str(e).splitlines()[0]} (see --help)", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        if len(rest) > 1:
            print(f"error: unexpected arguments {rest[1:]}: every setting is a --flag (see --help)", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        return rest
    return parse


def _interrupt_on_terminate() -> None:
    """SIGTERM (a cluster scheduler's stop, `kill`'s default, and the only polite stop for a command started in
    the background, where the shell has SIGINT ignored) interrupts like Ctrl-C: one line, and a rerun resumes."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def _with_errors(main: Callable[[], int]) -> Callable[[list[str]], int]:
    def wrapped(argv) -> int:
        _interrupt_on_terminate()
        try:
            return main()
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except Interrupted as e:
            print(f"interrupted {e}", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise
            where = e.filename or "the output directory"
            print(f"error: cannot write {where} ({os.strerror(e.errno)}): free space or fix permissions, then "
                  f"rerun the same command to resume (finished results are kept)", file=sys.stderr)
            sys.exit(1)
    return wrapped


def run_command(module: str, summary: str, main: Callable[[], int], define_flags: Callable[[], None] | None = None) -> None:
    """Define the command's flags (if they are defined on demand), parse them and run `main()` under the
    error policy (absl's `app.run`, our parser)."""
    if define_flags is not None:
        define_flags()
    app.run(_with_errors(main), flags_parser=_parser(module, summary))
