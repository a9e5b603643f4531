"""`python -m lth_tf.report --run_dir=DIR[,DIR...]`: rewrite a run's report (results, summary, plots,
TensorBoard) from the tasks it has finished, without training anything: for a run still in progress, or
one made by an earlier version of lth_tf."""
from __future__ import annotations

from absl import flags

from lth_tf import cli

FLAGS = flags.FLAGS
COMMAND = "lth_tf.report"
SUMMARY = "Rewrite the report of one or more runs from their finished tasks."


def define_flags() -> None:
    if "run_dir" not in FLAGS:
        flags.DEFINE_list("run_dir", [], "Run directories, comma-separated.", module_name=COMMAND)


def main() -> int:
    from lth_tf.report import write_report
    from lth_tf.rundir import RunDir

    if not FLAGS.run_dir:
        raise cli.UserError("--run_dir is required: one or more run directories, comma-separated")
    for path in FLAGS.run_dir:
        run = RunDir.open(path)
        metrics = run.finished_metrics()
        if not metrics:
            raise cli.UserError(f"--run_dir={path}: no finished task yet (no metrics.json)")
        write_report(run, run.config(), metrics, log=lambda m: print(m, flush=True))
        print(f"report of {len(metrics)} finished task(s) written to {run.path}", flush=True)
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
