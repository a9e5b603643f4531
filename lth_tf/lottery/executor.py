"""Running an experiment: prepare it (data, run directory), execute its tasks, report.

`prepare` reads the data, finds or makes the run directory from the run's identity (settings and data
content) and returns the `Experiment` every task needs. `execute` runs the tasks of `plan` one after
another in this process, skipping finished ones, with a progress line and an ETA, then writes the report.
"""
from __future__ import annotations

import json
import time

from lth_tf.config import RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery.imp import Experiment
from lth_tf.lottery.tasks import plan
from lth_tf.rundir import RunDir, data_fingerprint


def log_line(message: str) -> None:
    print(message, flush=True)


def prepare(cfg: RunConfig, output_dir: str, log=log_line, progress: bool = True) -> Experiment:
    """The experiment of `cfg` in `output_dir`, its data loaded and its run directory ready.
    `cfg` must have passed `RunConfig.validate` (the CLI does it before TensorFlow loads)."""
    from lth_tf.data import load_glove, prepare_data

    data = prepare_data(cfg.data, cfg.data.resolved_vocab_size(cfg.model.model), log=log)
    matrix = None
    if cfg.data.glove_path:
        matrix, coverage = load_glove(cfg.data.glove_path, data.vocab, log=log)
        log(f"GloVe: {json.dumps({k: v for k, v in coverage.items() if not isinstance(v, (list, dict))})}")
    fingerprint = data_fingerprint(data)
    run = RunDir.locate(cfg, output_dir, fingerprint)
    run.check_data(fingerprint)
    experiment = Experiment(cfg, run, data, matrix, log=log, progress=progress)
    if cfg.experiment.late_rewind:  # a rewind point past the longest possible level 0 fails now, not later
        step, most = experiment.rewind_iteration(), cfg.train.epochs * experiment.steps_per_epoch
        if step > most:
            raise UserError(f"--rewind_step={cfg.experiment.rewind_step} is step {step}, beyond level 0's "
                            f"{most} steps ({cfg.train.epochs} epochs x {experiment.steps_per_epoch})")
    run.create()
    run.write_config(cfg, fingerprint)
    run.write_data(data, fingerprint)
    log(f"run directory: {run.path}")
    return experiment


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def execute(cfg: RunConfig, output_dir: str, log=log_line, progress: bool = True) -> RunDir:
    """Run (or resume) the experiment in this process; returns its run directory."""
    from lth_tf import report  # matplotlib only when a run reports

    experiment = prepare(cfg, output_dir, log=log, progress=progress)
    run = experiment.run_dir
    tasks = plan(cfg.prune.levels, cfg.branch_list(), cfg.experiment.replicates)
    todo = [t for t in tasks if not run.is_done(t)]
    log(f"{len(tasks)} tasks, {len(tasks) - len(todo)} already done")
    spent = 0.0
    for done_now, task in enumerate(todo, start=1):
        log(f"[{task.key}] training ...")
        started = time.perf_counter()
        metrics = experiment.run(task)
        spent += time.perf_counter() - started
        eta = spent / done_now * (len(todo) - done_now)
        log(f"[{task.key}] sparsity {100 * metrics['sparsity']:.2f}% | valid acc {metrics['valid_accuracy']:.4f} "
            f"| test acc {metrics['test_accuracy']:.4f} | {metrics['epochs_trained']} epochs "
            f"{metrics['seconds']:.0f}s | done {len(tasks) - len(todo) + done_now}/{len(tasks)} "
            f"| ETA {_duration(eta)}")
    report.write_report(run, cfg, [run.read_metrics(t) for t in tasks], log=log)
    return run
