"""Runs an experiment on one machine: checks the settings, finds or makes the run directory, prepares
the data, executes the tasks of `lottery.plan` one after another (skipping finished ones), then writes
the report. Tasks are independent once their inputs exist, so another executor could spread them over
machines; this one keeps a progress line with an ETA.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from lth_tf import atomic
from lth_tf.config import DATASETS, MODELS, RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery import Experiment, parse_step, plan


def validate(cfg: RunConfig) -> None:
    """Fail at start, with the flag's name, on settings that cannot work."""
    d, m, p, t, e = cfg.data, cfg.model, cfg.prune, cfg.train, cfg.experiment
    checks = [
        (d.dataset in DATASETS, f"--dataset={d.dataset!r}: choose from {', '.join(DATASETS)}"),
        (m.model in MODELS, f"--model={m.model!r}: choose from {', '.join(MODELS)}"),
        (0.0 < p.prune_fraction < 1.0, f"--prune_fraction={p.prune_fraction}: must lie strictly between 0 and 1"),
        (p.levels >= 0, f"--levels={p.levels}: must be 0 or more"),
        (t.epochs >= 1, f"--epochs={t.epochs}: must be at least 1"),
        (t.batch_size >= 1, f"--batch_size={t.batch_size}: must be at least 1"),
        (t.learning_rate > 0, f"--learning_rate={t.learning_rate}: must be positive"),
        (t.patience >= 0, f"--patience={t.patience}: must be 0 (off) or more"),
        (e.replicates >= 1, f"--replicates={e.replicates}: must be at least 1"),
        (0.0 < d.valid_fraction < 1.0, f"--valid_fraction={d.valid_fraction}: must lie strictly between 0 and 1"),
        (d.vocab_size >= 0, f"--vocab_size={d.vocab_size}: must be 0 (the study's) or more"),
        (0.0 <= m.dropout < 1.0, f"--dropout={m.dropout}: must lie in [0, 1)"),
        (not (e.late_rewind and e.finetune), "--late_rewind and --finetune exclude each other: choose one"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    m.widths()
    cfg.branch_list()
    if e.late_rewind:
        parse_step(e.rewind_step, 1)
    if d.glove_path and not os.path.isfile(d.glove_path):
        raise UserError(f"--glove_path={d.glove_path}: no such file")


def run_dir_for(cfg: RunConfig, output_dir: str) -> str:
    return os.path.join(output_dir, f"{cfg.model.model}_{cfg.data.dataset}_{cfg.run_hash()}")


def log_line(message: str) -> None:
    print(message, flush=True)


def _remove_stale_temporaries(run_dir: str) -> None:
    """Temporary files a killed run left behind (never complete results: those are renamed into place)."""
    for folder, _, files in os.walk(run_dir):
        for name in files:
            if name.startswith(".tmp-"):
                os.remove(os.path.join(folder, name))


def prepare_run_dir(cfg: RunConfig, output_dir: str) -> str:
    run_dir = run_dir_for(cfg, output_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
        _remove_stale_temporaries(run_dir)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UserError(f"--output_dir={output_dir}: cannot write there ({e.strerror}); choose another") from None
    settings = {"settings": cfg.to_dict(), "non_default": cfg.non_default(), "run_hash": cfg.run_hash()}
    atomic.write_json(os.path.join(run_dir, "config.json"), settings)
    return run_dir


def data_fingerprint(data) -> str:
    """A hash of the encoded data a run trains on (vocabulary, every split's ids and labels)."""
    h = hashlib.sha256("\n".join(data.vocab).encode())
    for split in (data.train, data.valid, data.test):
        for array in (split.token_ids, split.offsets, split.labels):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def _check_same_data(run_dir: str, data) -> None:
    """A run resumes only on the data it started with (a changed tokeniser or source would mix results)."""
    path = os.path.join(run_dir, "data.json")
    if os.path.exists(path):
        before = atomic.read_json(path).get("fingerprint")
        if before and before != data_fingerprint(data):
            raise UserError(f"{run_dir} was started on different data (fingerprint {before}, now "
                            f"{data_fingerprint(data)}: tokeniser, source or split changed); "
                            f"use another --output_dir to start afresh")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def execute(cfg: RunConfig, output_dir: str, log=log_line, progress: bool = True) -> str:
    """Run (or resume) the experiment; returns the run directory."""
    from lth_tf import report  # matplotlib only when a run reports
    from lth_tf.data import load_glove, prepare_data

    validate(cfg)
    run_dir = prepare_run_dir(cfg, output_dir)
    log(f"run directory: {run_dir}")
    data = prepare_data(cfg.data, cfg.data.resolved_vocab_size(cfg.model.model), log=log)
    matrix = None
    if cfg.data.glove_path:
        matrix, coverage = load_glove(cfg.data.glove_path, data.vocab, log=log)
        log(f"GloVe: {json.dumps({k: v for k, v in coverage.items() if not isinstance(v, (list, dict))})}")
    _check_same_data(run_dir, data)
    atomic.write_text(os.path.join(run_dir, "vocab.txt"), "\n".join(data.vocab) + "\n")
    atomic.write_json(os.path.join(run_dir, "data.json"), {"class_names": data.class_names,
                                                        "num_classes": data.num_classes,
                                                        "vocab_size": len(data.vocab), "stats": data.stats,
                                                        "fingerprint": data_fingerprint(data)})
    experiment = Experiment(cfg, run_dir, data, matrix, log=log, progress=progress)
    if cfg.experiment.late_rewind:  # a rewind point past the longest possible level 0 fails now, not later
        step = experiment.rewind_step()
        most = cfg.train.epochs * experiment.steps_per_epoch
        if step > most:
            raise UserError(f"--rewind_step={cfg.experiment.rewind_step} is step {step}, beyond level 0's "
                            f"{most} steps ({cfg.train.epochs} epochs x {experiment.steps_per_epoch})")
    tasks = plan(cfg.prune.levels, cfg.branch_list(), cfg.experiment.replicates)
    todo = [t for t in tasks if not experiment.is_done(t)]
    log(f"{len(tasks)} tasks, {len(tasks) - len(todo)} already done")
    spent, done_now = 0.0, 0
    for task in todo:
        log(f"[{task.key}] training ...")
        started = time.perf_counter()
        metrics = experiment.run(task)
        spent += time.perf_counter() - started
        done_now += 1
        eta = spent / done_now * (len(todo) - done_now)
        log(f"[{task.key}] sparsity {100 * metrics['sparsity']:.2f}% | valid acc {metrics['valid_accuracy']:.4f} "
            f"| test acc {metrics['test_accuracy']:.4f} | {metrics['epochs_trained']} epochs "
            f"{metrics['seconds']:.0f}s | done {len(tasks) - len(todo) + done_now}/{len(tasks)} "
            f"| ETA {_duration(eta)}")
    report.write_report(run_dir, cfg, [experiment.run(t) for t in tasks], log=log)
    return run_dir
