"""Instability analysis of a level's ticket (Frankle et al. 2020, "Linear mode connectivity and the lottery
ticket hypothesis"):

    python -m lth_tf.instruments.instability --run_dir=DIR --level=5 --rewind_steps=0it,110it,1ep
        [--points=11] [--threshold=2] [--instability_replicates=0] [--identical_copies] [--executor=ray] [--out=DIR]

For each rewind step n: level 0's weights at step n (replayed from the run's seeds), two copies of the level's
ticket mask trained from there with different data orders and dropout seeds, and their weights interpolated
at --points evenly spaced points, each evaluated on the validation split. Instability = the largest error on
that path minus the mean of its end points' errors, in percentage points; the recommended rewind step is the
earliest whose instability (mean over the replicates) is below --threshold. Each rewind point, copy and path
is a task in the run directory (lth_tf.lottery.spawn_tasks), run by the scheduler on this process or Ray: a
rerun finishes what is missing and retrains nothing. Writes <run_dir>/instability_level_<LL>/ (or --out):
instability.md, instability.json, instability.png (lth_tf.instruments.instability_report).
"""
from __future__ import annotations

import dataclasses
import os

from absl import flags

from lth_tf import cli
from lth_tf.config import RunConfig, Step
from lth_tf.errors import UserError
from lth_tf.lottery import interpolation, spawn_tasks
from lth_tf.lottery.existing import open_experiment
from lth_tf.rundir import INSTABILITY_REPORT, RunDir, Task

COMMAND = "lth_tf.instruments.instability"
SUMMARY = ("Instability analysis of a level's ticket: copies trained from several rewind steps, the error on the "
           "line between them, the earliest stable rewind step (docs/instruments.md).")


@dataclasses.dataclass(frozen=True)
class Request:
    """What to measure: a level, rewind steps (as given, and as iterations), replicates, points, copies."""
    level: int
    steps: tuple[tuple[str, int], ...]
    replicates: tuple[int, ...]
    points: int
    identical: bool

    def tasks(self) -> list[Task]:
        return spawn_tasks.plan(list(self.replicates), self.level, [n for _, n in self.steps], self.points,
                                self.identical)


# ------------------------------------------------------------------------------------------ checking ---
def check_level(run: RunDir, level: int, replicates: list[int]) -> None:
    """The level's ticket must be finished in every replicate (its mask is what the copies train)."""
    if level < 0:
        raise UserError(f"--level={level}: give the level whose ticket to analyse (0 = the dense network)")
    missing = [r for r in replicates if not run.is_done(Task(r, level, spawn_tasks.TICKET))]
    if missing:
        raise UserError(f"--level={level}: the ticket of replicate {', '.join(map(str, missing))} has not finished "
                        f"that level in {run.path}; run lth_tf.main to level {level} first")


def parse_steps(texts: list[str]) -> list[Step]:
    if not texts:
        raise UserError("--rewind_steps is required: steps of level 0's training such as 0it,110it,1ep")
    return [Step.parse(t.strip(), flag="--rewind_steps") for t in texts]


def parse_replicates(texts: list[str]) -> list[int]:
    try:
        replicates = sorted({int(t) for t in texts})
    except ValueError:
        raise UserError(f"--instability_replicates={','.join(texts)}: give replicate numbers like 0,1") from None
    if not replicates or replicates[0] < 0:
        raise UserError(f"--instability_replicates={','.join(texts)}: give replicate numbers like 0,1")
    return replicates


def make_request(cfg: RunConfig, steps_per_epoch: int, level: int, steps: list[Step], replicates: list[int],
                 points: int, identical: bool) -> Request:
    """The request, its steps as iterations in ascending order (a step given twice, e.g. 1ep and 27it, once)."""
    if points < 2:
        raise UserError(f"--points={points}: an interpolation needs at least 2 points (11 is usual)")
    most = cfg.train.epochs * steps_per_epoch
    by_iteration: dict[int, str] = {}
    for step in steps:
        n = step.iteration(steps_per_epoch)
        if n > most:
            raise UserError(f"--rewind_steps={step} is step {n}, beyond level 0's {most} steps "
                            f"({cfg.train.epochs} epochs x {steps_per_epoch})")
        by_iteration.setdefault(n, str(step))
    return Request(level, tuple((by_iteration[n], n) for n in sorted(by_iteration)), tuple(replicates), points,
                   identical)


# ------------------------------------------------------------------------------------------ analysis ---
def _copy_summary(m: dict) -> dict:
    return {k: m[k] for k in ("valid_loss", "valid_accuracy", "epochs_trained", "best_epoch", "steps", "seed")}


def analyse(run: RunDir, req: Request, threshold: float) -> dict:
    """Instability per rewind step from the finished tasks (no TensorFlow); threshold in percentage points."""
    rows = []
    for given, n in req.steps:
        per_replicate = []
        for r in req.replicates:
            path = run.read_metrics(spawn_tasks.path(r, req.level, n, spawn_tasks.copies(req.identical), req.points))
            point = run.read_metrics(spawn_tasks.rewind_point(r, n))
            copies = {c: _copy_summary(run.read_metrics(spawn_tasks.copy(r, req.level, n, c))) for c in path["copies"]}
            per_replicate.append({"replicate": r, "rewind_valid_accuracy": point["valid_accuracy"],
                                  "copies": copies, "path": path["path"],
                                  "instability": 100 * path["instability"],
                                  "loss_barrier": path["loss_barrier"]})
        errors = [[100 * e for e in p["path"]["valid_error"]] for p in per_replicate]
        mean_error = [sum(col) / len(col) for col in zip(*errors)]
        instability = sum(p["instability"] for p in per_replicate) / len(per_replicate)
        rows.append({"step": given, "iteration": n, "replicates": per_replicate, "instability": instability,
                     "instability_of_mean_curve": interpolation.barrier(mean_error),
                     "loss_barrier": sum(p["loss_barrier"] for p in per_replicate) / len(per_replicate),
                     "mean_error": mean_error, "stable": instability < threshold})
    recommended = next((row for row in rows if row["stable"]), None)
    ticket = run.read_metrics(Task(req.replicates[0], req.level, spawn_tasks.TICKET))
    return {"run": run.name, "path": os.path.abspath(run.path), "level": req.level,
            "sparsity": ticket.get("sparsity"), "replicates": list(req.replicates), "points": req.points,
            "identical_copies": req.identical, "threshold": threshold, "alpha": interpolation.alphas(req.points),
            "steps": rows, "recommended": recommended["step"] if recommended else None,
            "recommended_iteration": recommended["iteration"] if recommended else None}


# ------------------------------------------------------------------------------------------- command ---
FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("run_dir", "", "The run directory (written by lth_tf.main).", module_name=COMMAND)
    flags.DEFINE_integer("level", -1, "The level whose ticket mask the copies train (its ticket must be finished).",
                         module_name=COMMAND)
    flags.DEFINE_list("rewind_steps", [], "Rewind steps of level 0's training: '<n>it', '<n>ep' or '<n>ep<m>it', "
                                          "comma-separated, e.g. 0it,110it,1ep.", module_name=COMMAND)
    flags.DEFINE_integer("points", 11, "Evenly spaced points on the line between the two copies (ends included).",
                         module_name=COMMAND)
    flags.DEFINE_float("threshold", 2.0, "Stable: instability below this many percentage points of error.",
                       module_name=COMMAND)
    flags.DEFINE_list("instability_replicates", ["0"], "Replicates to analyse (each costs its own copies).",
                      module_name=COMMAND)
    flags.DEFINE_boolean("identical_copies", False, "Train the second copy with the first's data order and dropout "
                                                    "(a check: its instability must be 0).", module_name=COMMAND)
    flags.DEFINE_string("data_dir", "", "Where the run's data lives now, if it moved (empty: where the run read it).",
                        module_name=COMMAND)
    flags.DEFINE_string("out", "", "Where to write the report; empty = <run_dir>/instability_level_<LL>.",
                        module_name=COMMAND)
    flags.DEFINE_boolean("progress", True, "Show a progress bar per epoch (local executor).", module_name=COMMAND)
    cli.define_executor_flags()


def main() -> int:
    run = RunDir.open(FLAGS.run_dir)
    steps, replicates = parse_steps(FLAGS.rewind_steps), parse_replicates(FLAGS.instability_replicates)
    check_level(run, FLAGS.level, replicates)
    if not FLAGS.threshold > 0:
        raise UserError(f"--threshold={FLAGS.threshold}: give percentage points above 0, e.g. 2")
    options = cli.executor_from_flags()
    for note in options.validate():
        print(f"note: {note}", flush=True)
    exp = open_experiment(run, FLAGS.data_dir, progress=FLAGS.progress and options.executor == "local")
    from lth_tf.instruments.instability_report import write
    from lth_tf.lottery.executor import log_line, run_jobs
    from lth_tf.lottery.scheduler import Job

    cfg = exp.cfg
    req = make_request(cfg, exp.steps_per_epoch, FLAGS.level, steps, replicates, FLAGS.points, FLAGS.identical_copies)
    run_jobs([Job(cfg, run, req.tasks())], [exp], options, log_line)
    result = analyse(run, req, FLAGS.threshold)
    written = write(result, FLAGS.out or run.file(INSTABILITY_REPORT.format(req.level)))
    best = result["recommended"]
    print(f"recommended rewind step: {best}" if best else
          f"no rewind step is stable (instability below {FLAGS.threshold:g} points)", flush=True)
    print(f"instability analysis written to {written['markdown']}", flush=True)
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
