"""Running experiments: prepare each run (data, run directory), execute their tasks as one graph on the
chosen backend (this process, or a Ray cluster), then write each run's report.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from lth_tf.config import ExecutorConfig, RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery.imp import Experiment
from lth_tf.lottery.scheduler import Job, LocalBackend, Scheduler
from lth_tf.lottery.tasks import plan
from lth_tf.rundir import RunDir, data_fingerprint


def log_line(message: str) -> None:
    print(message, flush=True)


def load_inputs(cfg: RunConfig, log=log_line):
    """The data a run trains on, its GloVe matrix (or None) and its content fingerprint."""
    from lth_tf.data import load_glove, prepare_data

    data = prepare_data(cfg.data, cfg.data.resolved_vocab_size(cfg.model.model), log=log)
    matrix = None
    if cfg.data.glove_path:
        matrix, coverage = load_glove(cfg.data.glove_path, data.vocab, log=log)
        log(f"GloVe: {json.dumps({k: v for k, v in coverage.items() if not isinstance(v, (list, dict))})}")
    return data, matrix, data_fingerprint(data)


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """Paths as every worker of a cluster sees them (where the data lives is not part of a run's identity)."""
    d = cfg.data
    absolute = {k: os.path.abspath(os.path.expanduser(getattr(d, k))) for k in ("data_dir", "glove_path", "cache_dir")
                if getattr(d, k)}
    e = cfg.experiment
    source = {"transfer_from": os.path.abspath(os.path.expanduser(e.transfer_from))} if e.transfer_from else {}
    return dataclasses.replace(cfg, data=dataclasses.replace(d, **absolute),
                               experiment=dataclasses.replace(e, **source))


def prepare(cfg: RunConfig, output_dir: str, log=log_line, progress: bool = True) -> Experiment:
    """The experiment of `cfg` in `output_dir`, its data loaded and its run directory ready.
    `cfg` must have passed `RunConfig.validate` (the CLI does it before TensorFlow loads)."""
    data, matrix, fingerprint = load_inputs(cfg, log)
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
    experiment = Experiment(cfg, run, data, matrix, log=log, progress=progress)
    if experiment.transfer:
        run.write_transfer(experiment.transfer.record(experiment.build(experiment.seed(0)), data))
    return experiment


def reopen(cfg: RunConfig, run: RunDir, log=log_line, progress: bool = True) -> Experiment:
    """The experiment of an existing run, for more tasks in it (lth_tf.instruments.instability): its data
    loaded from `cfg` and checked to be the data the run was made on."""
    data, matrix, fingerprint = load_inputs(cfg, log)
    run.check_data(fingerprint)
    return Experiment(cfg, run, data, matrix, log=log, progress=progress)


def execute(cfgs: list[RunConfig], output_dir: str, options: ExecutorConfig = ExecutorConfig(), log=log_line,
            progress: bool = True) -> list[RunDir]:
    """Run (or resume) the experiments of `cfgs` as one task graph; returns their run directories.
    Any number of processes may execute the same runs at once: each claims a task before training it."""
    from lth_tf import report  # matplotlib only when a run reports

    cfgs = [with_absolute_paths(c) for c in cfgs]
    experiments = [prepare(c, output_dir, log=log, progress=progress and options.executor == "local")
                   for c in cfgs]
    jobs = [Job(c, e.run_dir, plan(c.prune.levels, c.branch_list(), c.experiment.replicates))
            for c, e in zip(cfgs, experiments)]
    run_jobs(jobs, experiments, options, log)
    for job in jobs:
        report.write_report(job.run, job.cfg, [job.run.read_metrics(t) for t in job.tasks], log=log)
    return [job.run for job in jobs]


def run_jobs(jobs: list[Job], experiments: list[Experiment], options: ExecutorConfig, log=log_line) -> None:
    """Run the jobs' tasks as one graph on the backend `options` names (experiments[i]: jobs[i]'s, in this
    process; a Ray worker prepares its own from the job's settings)."""
    if options.executor == "ray":
        from lth_tf.lottery.ray_backend import RayBackend

        backend = RayBackend(options, jobs, log)
    else:
        backend = LocalBackend(experiments, log)
    Scheduler(jobs, backend, log).run()
