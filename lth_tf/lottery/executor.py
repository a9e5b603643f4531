"""Running an experiment: prepare it (data, run directory), execute its tasks, report.

`prepare` reads the data, finds or makes the run directory from the run's identity (settings and data
content) and returns the `Experiment` every task needs. `execute` runs the tasks of `plan` one after
another in this process, skipping finished ones, with a progress line and an ETA, then writes the report.
"""
from __future__ import annotations

import json
import math
import time

from lth_tf.atomic import DamagedFile
from lth_tf.config import RunConfig
from lth_tf.errors import Interrupted, UserError
from lth_tf.lottery.imp import Experiment, MissingInput
from lth_tf.lottery.tasks import dependencies, plan
from lth_tf.rundir import RunDir, Task, data_fingerprint
from lth_tf.training import Interrupted as TrainingInterrupted

POLL_S = 2.0  # how often a process waiting for another's task looks again


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
    if cfg.experiment.late_rewind:  # a rewind point past the longest possible level 0 fails now, not later
        steps_per_epoch = math.ceil(len(data.train) / cfg.train.batch_size)
        step, most = cfg.rewind().step.iteration(steps_per_epoch), cfg.train.epochs * steps_per_epoch
        if step > most:
            raise UserError(f"--rewind_step={cfg.experiment.rewind_step} is step {step}, beyond level 0's "
                            f"{most} steps ({cfg.train.epochs} epochs x {steps_per_epoch})")
    run.create()
    run.write_config(cfg, fingerprint)
    run.write_data(data, fingerprint)
    log(f"run directory: {run.path}")
    return Experiment(cfg, run, data, matrix, log=log, progress=progress)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def pending_tasks(run: RunDir, tasks: list[Task], log=log_line) -> list[Task]:
    """The tasks not yet done. A task whose metrics.json is damaged is not done: it is recomputed."""
    pending = []
    for task in tasks:
        if run.is_done(task):
            try:
                run.read_metrics(task)
                continue
            except DamagedFile as e:
                log(f"{e}: recomputing {task.key}")
                run.invalidate(task)
        pending.append(task)
    return pending


def execute(cfg: RunConfig, output_dir: str, log=log_line, progress: bool = True) -> RunDir:
    """Run (or resume) the experiment in this process; returns its run directory. Any number of processes
    may execute the same run at once: each claims a task before training it and skips claimed ones."""
    from lth_tf import report  # matplotlib only when a run reports

    experiment = prepare(cfg, output_dir, log=log, progress=progress)
    run = experiment.run_dir
    tasks = plan(cfg.prune.levels, cfg.branch_list(), cfg.experiment.replicates)
    pending = pending_tasks(run, tasks, log)
    log(f"{len(tasks)} tasks, {len(tasks) - len(pending)} already done")
    spent, done_here, waiting = 0.0, 0, False
    while pending:
        task = _next_runnable(run, pending)
        if task is None:  # the rest wait for tasks that other processes are training
            if not waiting:
                log("waiting for tasks that another process is training ...")
            waiting = True
            time.sleep(POLL_S)
            pending = pending_tasks(run, pending, log)
            continue
        waiting = False
        with run.claim(task) as mine:
            if not mine:  # another process claimed it since we looked
                continue
            if run.is_done(task):  # another process finished it since we looked
                pending.remove(task)
                continue
            log(f"[{task.key}] training ...")
            started = time.perf_counter()
            try:
                metrics = experiment.run(task)
            except MissingInput as e:
                log(f"[{task.key}] needs {e}: recomputing {e.producer.key}")
                run.invalidate(e.producer)
                pending = sorted(set(pending) | {e.producer}, key=tasks.index)
                continue
            except KeyboardInterrupt as e:
                epoch = f", epoch {e.epoch}" if isinstance(e, TrainingInterrupted) else ""
                resume = "from that epoch" if experiment.resumable else "from the start of that task"
                raise Interrupted(f"during {task.key}{epoch}: rerun the same command to resume "
                                  f"({resume})") from None
        pending.remove(task)
        spent += time.perf_counter() - started
        done_here += 1
        eta = spent / done_here * len(pending)
        log(f"[{task.key}] sparsity {100 * metrics['sparsity']:.2f}% | valid acc {metrics['valid_accuracy']:.4f} "
            f"| test acc {metrics['test_accuracy']:.4f} | {metrics['epochs_trained']} epochs "
            f"{metrics['seconds']:.0f}s | done {len(tasks) - len(pending)}/{len(tasks)} | ETA {_duration(eta)}")
    report.write_report(run, cfg, [run.read_metrics(t) for t in tasks], log=log)
    return run


def _next_runnable(run: RunDir, pending: list[Task]) -> Task | None:
    """The first pending task (plan order: trajectories first) whose inputs exist and that nobody holds."""
    for task in pending:
        if all(run.is_done(d) for d in dependencies(task)) and not run.is_claimed(task):
            return task
    return None
