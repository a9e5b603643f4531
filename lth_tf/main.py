"""Command line: `python -m lth_tf.main --dataset=imdb --model=cnn [--late_rewind] ...` (absl flags).

Flags are generated from the dataclasses in `lth_tf.config`, so every hyperparameter has one name, one
default and one help text. `--flagfile=flags/<preset>.cfg` loads one of the study's configurations.
User mistakes print one line (`error: ...`) and exit with status 2.
"""
from __future__ import annotations

import dataclasses
import sys

from absl import app, flags

import lth_tf  # noqa: F401  (Keras 2 before TensorFlow)
from lth_tf.config import RunConfig
from lth_tf.errors import UserError

FLAGS = flags.FLAGS


def define_config_flags() -> None:
    for section in RunConfig.SECTIONS:
        for f in dataclasses.fields(type(getattr(RunConfig(), section))):
            if f.name in FLAGS:
                continue
            help_text, choices = f.metadata["help"], f.metadata.get("choices")
            if isinstance(f.default, bool):
                flags.DEFINE_boolean(f.name, f.default, help_text)
            elif isinstance(f.default, int):
                flags.DEFINE_integer(f.name, f.default, help_text)
            elif isinstance(f.default, float):
                flags.DEFINE_float(f.name, f.default, help_text)
            else:
                flags.DEFINE_string(f.name, f.default, help_text + (f" One of: {', '.join(choices)}." if choices else ""))


define_config_flags()
flags.DEFINE_string("output_dir", "runs", "Where run directories are created (one per distinct setting).")
flags.DEFINE_boolean("export", False, "After the run, export the ticket chosen on validation accuracy as a "
                                      "SavedModel and TFLite models (see lth_tf.export).")
flags.DEFINE_string("export_dir", "saved_models", "Where --export writes.")
flags.DEFINE_boolean("progress", True, "Show a progress bar per epoch.")


def config_from_flags() -> RunConfig:
    sections = {}
    for section in RunConfig.SECTIONS:
        klass = type(getattr(RunConfig(), section))
        sections[section] = klass(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(klass)})
    return RunConfig(**sections)


def main(argv) -> int:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --helpfull)")
    from lth_tf import runner
    from lth_tf.keras import tf

    tf.config.experimental.enable_op_determinism()  # the same seed gives the same masks and numbers
    cfg = config_from_flags()
    run_dir = runner.execute(cfg, FLAGS.output_dir, progress=FLAGS.progress)
    if FLAGS.export:
        from lth_tf import export

        export.export_run(run_dir, FLAGS.export_dir)
    return 0


def _main_with_errors(argv) -> int:
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    try:
        app.run(_main_with_errors)
    except flags.Error as e:  # pragma: no cover - absl reports bad flags itself
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
