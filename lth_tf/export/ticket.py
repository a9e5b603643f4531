"""What an export reads from a run: the run's network description, one finished task (its trained weights,
mask and metrics), and the task's network rebuilt in Keras. Paths and file formats are lth_tf.rundir's;
the ticket-choosing rule is lth_tf.report's."""
from __future__ import annotations

import contextlib
import dataclasses
import os

import numpy as np

from lth_tf import report, rundir
from lth_tf.config import RunConfig
from lth_tf.errors import UserError
from lth_tf.keras import keras
from lth_tf.lottery import recompute
from lth_tf.lottery.tasks import dense
from lth_tf.nets.models import EMBEDDING_LAYER, build_model
from lth_tf.sparsity import registry


@dataclasses.dataclass
class LoadedRun:
    """A run directory and what rebuilding its network needs (settings, vocabulary, classes)."""
    dir: rundir.RunDir
    cfg: RunConfig
    run_hash: str
    vocab: list[str]
    class_names: list[str]
    num_classes: int

    @property
    def name(self) -> str:
        return self.dir.name


def load_run(path: str) -> LoadedRun:
    run = rundir.RunDir.open(path)
    cfg = run.config()
    info = run.data_info()
    # Runs name their hash in config.json; the settings' hash is how runs without that key were named.
    run_hash = str(run.read_config_file().get("run_hash") or cfg.legacy_hash())
    return LoadedRun(dir=run, cfg=cfg, run_hash=run_hash, vocab=run.vocab(), class_names=info["class_names"],
                     num_classes=info["num_classes"])


def _check_replicate(run: rundir.RunDir, replicate: int) -> None:
    found = run.replicates()
    if replicate not in found:
        raise UserError(f"--replicate={replicate}: {run.path} has no replicate {replicate} (replicates found: "
                        f"{', '.join(map(str, found)) or 'none'})")


def finished_levels(run: rundir.RunDir, replicate: int, branch: str) -> list[int]:
    """The finished levels of one replicate and branch; level 0 (dense, shared) counts for every branch."""
    return sorted({t.level for t in run.finished()
                   if t.replicate == replicate and (t.branch == branch or t == dense(replicate))})


def choose_level(run: rundir.RunDir, replicate: int = 0, branch: str = "ticket") -> int:
    """The run's chosen level, as its summary reports it (lth_tf.report.choose_level: one level per run, the
    best mean validation accuracy over replicates), for any replicate; level 0 if no pruned level finished."""
    _check_replicate(run, replicate)
    level = report.choose_level(run.finished_metrics(), branch=branch)
    if level is not None:
        return level
    if run.is_done(dense(replicate)):
        return 0
    raise UserError(f"{run.path}: replicate {replicate} has no finished task yet")


def dense_metrics(run: rundir.RunDir, replicate: int) -> dict:
    """The metrics of the replicate's dense level, {} if it has not finished."""
    task = dense(replicate)
    return run.read_metrics(task) if run.is_done(task) else {}


def rebuild(run: LoadedRun, weights: dict[str, np.ndarray]) -> keras.Model:
    """The run's network (build_model; the seed does not matter) holding `weights` (all of them, by name)."""
    matrix = weights.get(f"{EMBEDDING_LAYER}/embeddings")  # its shape also covers a GloVe embedding's width
    if matrix is not None and matrix.shape[0] != len(run.vocab):
        raise UserError(f"the embedding has {matrix.shape[0]} rows but {rundir.VOCAB} {len(run.vocab)} tokens")
    model = build_model(run.cfg.model, len(run.vocab), run.num_classes, seed=0, embedding_matrix=matrix)
    variables = registry.all_weights(model)
    missing, extra = sorted(set(variables) - set(weights)), sorted(set(weights) - set(variables))
    if missing or extra:
        raise UserError(f"{rundir.WEIGHTS} does not match the network of {rundir.CONFIG}: "
                        f"missing {missing or 'none'}, extra {extra or 'none'}")
    for name, var in variables.items():
        if tuple(weights[name].shape) != tuple(var.shape):
            raise UserError(f"{rundir.WEIGHTS}: {name} has shape {weights[name].shape}, the network's is "
                            f"{tuple(var.shape)}")
        var.assign(weights[name])
    return model


def check_pruned_zero(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray], source: str) -> None:
    """Every weight a mask prunes must be exactly 0.0 in the trained weights."""
    for name, mask in masks.items():
        if name not in weights:
            raise UserError(f"{source}: mask of {name!r}, which {rundir.WEIGHTS} does not hold")
        if mask.shape != weights[name].shape:
            raise UserError(f"{source}: mask of {name} has shape {mask.shape}, the weight {weights[name].shape}")
        bad = int(np.count_nonzero(weights[name][~mask]))
        if bad:
            raise UserError(f"{source}: {bad} weights of {name} that the mask prunes are not zero: these weights "
                            f"were not trained under this mask")


@dataclasses.dataclass
class LoadedTask:
    """A finished task of a run, read and checked: its trained weights in the rebuilt network."""
    task: rundir.Task
    weights: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    metrics: dict
    model: keras.Model

    @property
    def replicate(self) -> int:
        return self.task.replicate

    @property
    def level(self) -> int:
        return self.task.level

    @property
    def branch(self) -> str:
        return self.task.branch


def bring_back_weights(run: rundir.RunDir, task: rundir.Task, log=print) -> None:
    """A finished task without its weights (a run restored from its record, or made before weights were kept)
    is trained again, bit-identical, from the run's settings and data."""
    log(f"export: {task.key} has no {rundir.WEIGHTS} on this machine (a run restored from its record?): "
        f"training it again from the run's settings and seeds")
    recompute.in_subprocess(run, [task])


def load_task(run: LoadedRun, replicate: int, level: int, branch: str, log=print) -> LoadedTask:
    _check_replicate(run.dir, replicate)
    task = dense(replicate) if level == 0 else rundir.Task(replicate, level, branch)
    if not run.dir.is_done(task):
        available = finished_levels(run.dir, replicate, task.branch)
        raise UserError(f"--level={level} --branch={task.branch} --replicate={replicate}: not a finished task of "
                        f"{run.dir.path} (finished levels: {', '.join(map(str, available)) or 'none'})")
    if not os.path.exists(run.dir.task_file(task, rundir.WEIGHTS)):
        bring_back_weights(run.dir, task, log)
    metrics = run.dir.read_metrics(task)
    weights = run.dir.read_weights(task)
    try:
        masks = run.dir.read_masks(task)
    except FileNotFoundError:
        if level:  # runs made before 0.2 kept no mask.npz in reinit and study_random tasks
            raise UserError(f"{run.dir.task_file(task, rundir.MASK)}: missing (the mask this task trained under: "
                            f"runs made before 0.2 did not keep it for reinit and study_random tasks)") from None
        masks = {}
    check_pruned_zero(weights, masks, run.dir.task_dir(task))
    return LoadedTask(task, weights, masks, metrics, rebuild(run, weights))


@contextlib.contextmanager
def padding_mask_off(model: keras.Model):
    """Within the block the network's embedding emits no padding mask (mask_zero off; it is read when a
    function is traced). Fed only the real tokens of one text, the network then computes what it does with
    the mask, and Keras' LSTM traces to the function that the TFLite converter fuses into
    UNIDIRECTIONAL_SEQUENCE_LSTM (a masked LSTM stays a WHILE loop)."""
    embedding = model.get_layer(EMBEDDING_LAYER)
    before = embedding.mask_zero
    embedding.mask_zero = False
    try:
        yield model
    finally:
        embedding.mask_zero = before
