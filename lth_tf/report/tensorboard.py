"""TensorBoard logs of a run, rebuilt from its tasks' metrics and written as one folder (atomic):

    tensorboard/                          the HParams experiment (settings + branch + level; valid/test accuracy)
    tensorboard/r<R>/<branch>/            per-level points: valid/test accuracy, valid loss, sparsity (step = level)
    tensorboard/r<R>/<branch>/level_<LL>/ one task: its per-epoch curves (step = epoch) and its HParams session

Level 0 (dense) is stored as the ticket's. `tensorboard --logdir <run>/tensorboard` (or the output dir).
"""
from __future__ import annotations

import os

from lth_tf import atomic, rundir
from lth_tf.config import RunConfig

EPOCH_KEYS = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy")
LEVEL_KEYS = ("valid_accuracy", "test_accuracy", "valid_loss", "sparsity")
METRICS = {"task/valid_accuracy": "validation accuracy", "task/test_accuracy": "test accuracy",
           "task/sparsity": "sparsity"}
# The resolved settings shown in the HParams view (with any other setting the run changed from its default).
SESSION_KEYS = ("replicate", "seed", "branch", "level")  # per task; "seed" = the replicate's seed
CORE_SETTINGS = ("data.dataset", "model.model", "data.vocab_size", "model.embedding_dim", "prune.strategy",
                 "prune.prune_fraction", "train.learning_rate", "train.batch_size", "train.epochs", "train.patience")


def hparams_of(cfg: RunConfig) -> dict:
    """The run's settings that matter, as HParams values (bool/int/float/str), plus how it rewinds."""
    resolved = cfg.resolved()
    changed = set(resolved.non_default())
    values = {}
    for section, f, value in resolved.fields():
        key = f"{section}.{f.name}"
        if f.name in SESSION_KEYS:
            continue
        if key in CORE_SETTINGS or (key in changed and key in cfg.identity()):
            values[f.name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    values["rewind"] = cfg.rewind().describe()
    return values


def write_tensorboard(cfg: RunConfig, metrics: list[dict], run_dir: str) -> None:
    from tensorboard.plugins.hparams import api as hp

    from lth_tf.keras import tf

    settings = hparams_of(cfg)
    by_run: dict[tuple[int, str], list[dict]] = {}
    for m in metrics:
        by_run.setdefault((m["replicate"], m["branch"]), []).append(m)
    with atomic.atomic_dir(os.path.join(run_dir, rundir.TENSORBOARD)) as tmp:
        root = tf.summary.create_file_writer(tmp)
        with root.as_default():
            hp.hparams_config(hparams=[hp.HParam(k) for k in [*settings, *SESSION_KEYS]],
                              metrics=[hp.Metric(tag, display_name=name) for tag, name in METRICS.items()])
        root.close()
        for (rep, branch), ms in sorted(by_run.items()):
            ms = sorted(ms, key=lambda m: m["level"])
            writer = tf.summary.create_file_writer(os.path.join(tmp, f"r{rep}", branch))
            with writer.as_default():
                for m in ms:
                    for key in LEVEL_KEYS:
                        tf.summary.scalar(key, m[key], step=m["level"])
            writer.close()
            for m in ms:
                task = rundir.Task(rep, m["level"], branch)
                writer = tf.summary.create_file_writer(os.path.join(tmp, f"r{rep}", branch, f"level_{m['level']:02d}"))
                with writer.as_default():
                    hp.hparams({**settings, "replicate": rep, "seed": int(m.get("seed", cfg.experiment.seed + rep)),
                                "branch": branch, "level": m["level"]}, trial_id=task.key)
                    for record in m.get("history", []):
                        for key in EPOCH_KEYS:
                            if key in record:
                                tf.summary.scalar(f"epoch/{key}", record[key], step=int(record["epoch"]))
                    for tag in METRICS:
                        tf.summary.scalar(tag, m[tag.split("/", 1)[1]], step=m["level"])
                writer.close()
