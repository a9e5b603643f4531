"""Sweeps: many runs as one task graph, one progress display, one report that joins them.

    python -m lth_tf.sweep --flagfiles=flags/imdb_cnn.cfg,flags/imdb_cnn_late_rewind.cfg \\
        --grid=seed=0,1,2 --set=--data_dir=/data/aclImdb --executor=ray

Every run is `--flagfile=F` (for each of --flagfiles, or none) + every --set flag + one point of the grid
(the product of all --grid settings, values separated by commas). Runs are ordinary run directories in
--output_dir: `lth_tf.main` with the same settings finds and extends them, and the other way round.
The sweep's report goes to <output_dir>/sweeps/<name>/ (summary.md, sweep.json).
"""
from __future__ import annotations

import itertools
import os

from absl import flags

from lth_tf import cli
from lth_tf.config import THREADS_ENV, RunConfig, _digest
from lth_tf.errors import UserError

FLAGS = flags.FLAGS
SUMMARY = "Run many lth_tf experiments as one task graph (see docs/scaling.md)."

flags.DEFINE_list("flagfiles", [], "Flagfiles, one run (or one grid of runs) each; empty = the defaults.")
flags.DEFINE_multi_string("grid", [], "A setting and its values, e.g. seed=0,1,2 or model=cnn,lstm; repeat for "
                                      "a product.")
flags.DEFINE_multi_string("set", [], "A flag given to every run, e.g. --set=--data_dir=/data/aclImdb.")
flags.DEFINE_string("output_dir", "runs", "Where run directories are created.")
flags.DEFINE_string("name", "", "The sweep's name (its report folder); empty = a hash of its runs' settings.")
flags.DEFINE_boolean("dry_run", False, "List the runs and their task counts, then stop.")
cli.define_executor_flags()


def grid_points(grid: list[str]) -> list[list[str]]:
    axes = []
    for spec in grid:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise UserError(f"--grid={spec!r}: write name=value1,value2 (e.g. seed=0,1,2)")
        axes.append([f"--{name.strip().lstrip('-')}={v.strip()}" for v in values.split(",") if v.strip()])
    return [list(point) for point in itertools.product(*axes)] if axes else [[]]


def sweep_configs(flagfiles: list[str], grid: list[str], common: list[str]) -> list[tuple[RunConfig, list[str]]]:
    """(settings, the flags that made them) of every run of the sweep, duplicates removed."""
    for path in flagfiles:
        if not os.path.isfile(path):
            raise UserError(f"--flagfiles: {path}: no such file")
    runs, seen = [], set()
    for flagfile in flagfiles or [None]:
        for point in grid_points(grid):
            args = ([f"--flagfile={flagfile}"] if flagfile else []) + list(common) + point
            cfg = cli.config_from_args(args, where=f"run {' '.join(args) or '(defaults)'}")
            for note in cfg.validate():
                print(f"note: {' '.join(args)}: {note}", flush=True)
            key = _digest(cfg.identity())
            if key not in seen:
                seen.add(key)
                runs.append((cfg, args))
    return runs


def main() -> int:
    options = cli.executor_from_flags()
    for note in options.validate():
        print(f"note: {note}", flush=True)
    runs = sweep_configs(FLAGS.flagfiles, FLAGS.grid, FLAGS.set)
    threads = {cfg.train.resolved_threads() for cfg, _ in runs}
    if options.executor == "local" and len(threads) > 1:
        raise UserError(f"--threads differs between runs ({sorted(threads)}): one local process has one thread "
                        f"pool size; use --executor=ray or one --threads")
    print(f"sweep: {len(runs)} run(s)", flush=True)
    if FLAGS.dry_run:
        for cfg, args in runs:
            levels, branches = cfg.prune.levels, len(cfg.branch_list())
            print(f"  {' '.join(args) or '(defaults)'}: {cfg.experiment.replicates * (1 + levels * branches)} tasks")
        return 0
    os.environ[THREADS_ENV] = str(threads.pop())
    from lth_tf import report
    from lth_tf.keras import tf
    from lth_tf.lottery.executor import execute

    tf.config.experimental.enable_op_determinism()
    run_dirs = execute([cfg for cfg, _ in runs], FLAGS.output_dir, options, progress=False)
    name = FLAGS.name or "sweep_" + _digest(sorted(r.name for r in run_dirs))
    path = report.write_sweep_report(os.path.join(FLAGS.output_dir, "sweeps", name),
                                     [(run, args) for run, (_, args) in zip(run_dirs, runs)])
    print(f"sweep report: {path}", flush=True)
    return 0


def run() -> None:
    cli.run_command("lth_tf.sweep", SUMMARY, main)


if __name__ == "__main__":
    run()
