"""Train finished tasks again because their weights are not on this machine (a run restored from its record,
lth_tf.archive, keeps metrics and masks but no weights). The task runs as it first ran, from the run's
settings, seeds and thread count, so its weights come back bit for bit.

    python -m lth_tf.lottery.recompute --run_dir=RUN --tasks=r0/level_00/dense[,r0/level_05/ticket] [--data_dir=D]

Its own process: the thread count is read when TensorFlow starts, and the caller (lth_tf.export) has started
TensorFlow already.
"""
from __future__ import annotations

import subprocess
import sys

from absl import flags

from lth_tf import cli
from lth_tf.errors import UserError
from lth_tf.lottery.existing import open_experiment
from lth_tf.rundir import RunDir, Task

COMMAND = "lth_tf.lottery.recompute"
SUMMARY = "Train finished tasks of a run again, bit-identical, to bring back weights this machine does not have."
FLAGS = flags.FLAGS


def parse_task(key: str) -> Task:
    """'r0/level_05/ticket' -> Task(0, 5, 'ticket')."""
    parts = key.strip().strip("/").split("/")
    try:
        replicate, level, branch = parts
        if not (replicate.startswith("r") and level.startswith("level_")):
            raise ValueError
        return Task(int(replicate[1:]), int(level[len("level_"):]), branch)
    except ValueError:
        raise UserError(f"--tasks: {key!r} is not a task; write it as r<replicate>/level_<LL>/<branch>, "
                        f"e.g. r0/level_00/dense") from None


def recompute(run: RunDir, tasks: list[Task], data_dir: str = "") -> None:
    """In this process, which must not have started TensorFlow yet."""
    for task in tasks:
        if not run.is_done(task):
            raise UserError(f"{task.key}: not a finished task of {run.path}; lth_tf.main trains unfinished tasks")
    experiment = open_experiment(run, data_dir)
    from lth_tf.config import ExecutorConfig
    from lth_tf.lottery.executor import log_line, run_jobs
    from lth_tf.lottery.scheduler import Job

    for task in tasks:
        run.invalidate(task)  # not done until it is written again; a kill here leaves it for lth_tf.main to redo
    run_jobs([Job(experiment.cfg, run, tasks)], [experiment], ExecutorConfig(), log_line)


def in_subprocess(run: RunDir, tasks: list[Task], data_dir: str = "") -> None:
    """`recompute` in a fresh Python, its output passed through; its one-line error becomes ours."""
    command = [sys.executable, "-m", COMMAND, f"--run_dir={run.path}", f"--tasks={','.join(t.key for t in tasks)}"]
    if data_dir:
        command.append(f"--data_dir={data_dir}")
    proc = subprocess.run(command, stdout=None, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode == 130:
        raise KeyboardInterrupt
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        raise UserError(lines[-1].removeprefix("error: ") if lines else f"{COMMAND} failed (exit {proc.returncode})")


def define_flags() -> None:
    flags.DEFINE_string("run_dir", "", "The run directory (written by lth_tf.main).", module_name=COMMAND)
    flags.DEFINE_list("tasks", [], "Finished tasks to train again, e.g. r0/level_00/dense,r0/level_05/ticket.",
                      module_name=COMMAND)
    flags.DEFINE_string("data_dir", "", "Where the run's data lives now, if it moved (empty: where the run read "
                                        "it).", module_name=COMMAND)


def main() -> int:
    if not FLAGS.tasks:
        raise UserError("--tasks: name at least one task, e.g. --tasks=r0/level_00/dense")
    recompute(RunDir.open(FLAGS.run_dir), [parse_task(k) for k in FLAGS.tasks], FLAGS.data_dir)
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
