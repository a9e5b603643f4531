"""Iterative magnitude pruning, one (replicate, level, branch) task at a time.

Level 0 trains the dense network from θ0 and records the rewind point. A task at level L >= 1 takes its
mask from the branch table (lth_tf.lottery.branches): a trajectory prunes its own level L-1's trained
weights, the controls borrow the ticket's mask or its sparsity; it starts from the rewind point or a
fresh init, and trains. Each task reads its inputs from the run directory and writes its outputs there
atomically, `metrics.json` last: a task whose metrics exist is done, so a rerun resumes, and tasks whose
inputs exist can run anywhere, in any order (lth_tf.lottery.tasks gives the graph).
"""
from __future__ import annotations

import math
import time

from lth_tf import machine
from lth_tf.atomic import DamagedFile
from lth_tf.config import Rewind, RunConfig
from lth_tf.data import PreparedData, make_dataset
from lth_tf.data.pipeline import XLA_LENGTH_BUCKETS
from lth_tf.errors import UserError
from lth_tf.keras import keras
from lth_tf.lottery import early_bird, spawn, spawn_tasks
from lth_tf.lottery.branches import BRANCHES
from lth_tf.lottery.tasks import dense, derive_seed, mask_parent
from lth_tf.lottery.transfer import Transfer
from lth_tf.nets.models import build_model
from lth_tf.rundir import RunDir, Task
from lth_tf.sparsity import masks as masks_lib, pruning
from lth_tf.sparsity.pruning import random_masks_like
from lth_tf.sparsity.registry import Selection
from lth_tf.sparsity.tfmot_masking import TfmotMaskedModel
from lth_tf.training import MaskedModel, train


class Experiment:
    """What every task of one run needs: its settings, data and run directory."""

    def __init__(self, cfg: RunConfig, run: RunDir, data: PreparedData, embedding_matrix=None,
                 log=print, progress: bool = True):
        self.cfg, self.run_dir, self.data, self.log, self.progress = cfg, run, data, log, progress
        self.embedding_matrix = embedding_matrix
        self.steps_per_epoch = math.ceil(len(data.train) / cfg.train.batch_size)
        self.rewind = cfg.rewind()
        self.resumable = run.format >= 2  # format-1 runs keep the dropout they started with (lth_tf.rundir)
        self.transfer = Transfer(cfg, data.vocab) if cfg.experiment.transfer_from else None

    def seed(self, r: int) -> int:
        return self.cfg.experiment.seed + r

    def model(self, r: int) -> MaskedModel:
        """A freshly built model for every task: Keras layers carry random-generator state from one training
        to the next, and a task must give the same numbers whether it runs after others or alone."""
        keras.backend.clear_session()
        return self.build(self.seed(r))

    def build(self, seed: int) -> MaskedModel:
        return build_masked(self.cfg, len(self.data.vocab), self.data.num_classes, seed, self.embedding_matrix,
                            self.resumable)

    def batches(self, split, seed=None):
        """Training batches (seed given): --batch_size, padded to XLA's few lengths with --xla (the CNN only:
        resolved() turns it off for the LSTM). Evaluation batches: --eval_batch_size, never bucket-padded
        (evaluation is not XLA-compiled)."""
        t = self.cfg.resolved().train
        training = seed is not None
        return make_dataset(split, t.batch_size if training else t.resolved_eval_batch_size(), shuffle_seed=seed,
                            bucket=t.bucket, max_len=self.cfg.data.max_len,
                            length_buckets=XLA_LENGTH_BUCKETS if training and t.xla else ())

    # --- a task's inputs ------------------------------------------------------------------------------
    def masks(self, task: Task, shapes: dict) -> masks_lib.Masks:
        """The mask `task` trains under: the one it stored (an earlier attempt of it, or a run restored from
        its record, lth_tf.archive), else derived from its branch's mask source."""
        try:
            return self.run_dir.read_masks(task)
        except (FileNotFoundError, DamagedFile):
            return self.derive_masks(task, shapes)

    def derive_masks(self, task: Task, shapes: dict) -> masks_lib.Masks:
        source = BRANCHES[task.branch].mask
        if task.level == 0:
            return masks_lib.dense_masks(shapes)
        if source == "random":
            ticket = self.masks(Task(task.replicate, task.level, "ticket"), shapes)
            return random_masks_like(ticket, derive_seed(self.seed(task.replicate), "mask", task.level))
        if self.transfer and task.level == 1:  # a transfer's level 1: the source's ticket, carried in
            return self.transfer.masks(self.seed(task.replicate), shapes)
        if source in BRANCHES:
            # A same-mask control takes the mask its trajectory trained under (stored when that task started),
            # not a re-derivation: after a restore, that would recompute the trajectory's previous level, and
            # on another CPU could prune a slightly different mask than the trajectory's.
            return self.masks(Task(task.replicate, task.level, source), shapes)
        parent = mask_parent(task)
        parent_masks, weights = self.masks(parent, shapes), self.read(parent, self.run_dir.read_weights)
        return pruning.prune_round(parent_masks, weights, self.cfg.prune)

    def start_weights(self, task: Task) -> dict:
        r = task.replicate
        if self.transfer and task.level >= 1 and BRANCHES[task.branch].start == "rewind":
            return self.transfer.weights(self.build(self.seed(r)).snapshot())  # fresh parts from this run's θ0
        if task.level == 0 or (BRANCHES[task.branch].start == "rewind" and self.rewind == Rewind()):
            return self.build(self.seed(r)).snapshot()  # θ0, the same as the rewind point written at level 0
        if BRANCHES[task.branch].start == "fresh":
            return self.build(derive_seed(self.seed(r), "init", task.level, task.branch)).snapshot()
        return self.read(dense(r), lambda _: self.run_dir.read_rewind(r))

    def read(self, producer: Task, reader):
        """An input that `producer` wrote; MissingInput (the executor recomputes the producer) if it is gone."""
        try:
            return reader(producer)
        except (FileNotFoundError, DamagedFile) as e:
            raise MissingInput(producer, str(getattr(e, "filename", None) or e)) from None

    # --- one task: the IMP loop's body ---------------------------------------------------------------
    def run(self, task: Task) -> dict:
        if spawn_tasks.is_spawned(task):
            return spawn.run(self, task)  # an instability analysis's task: no IMP task
        r, started = task.replicate, time.perf_counter()
        mm = self.model(r)
        task_masks = self.masks(task, mm.shapes)
        mm.set_masks(task_masks)
        mm.restore(self.start_weights(task))
        self.run_dir.write_masks(task, task_masks)
        seed = derive_seed(self.seed(r), task.level, task.branch)
        rewind_at = self.rewind_iteration() if task == dense(r) and not self.rewind.end else None
        checkpoints = self.run_dir.checkpoints(task) if self.resumable else None
        watch = early_bird.watch(self.cfg, task.branch)
        result = train(mm, lambda epoch: self.batches(self.data.train, derive_seed(seed, "epoch", epoch)),
                       lambda: self.batches(self.data.valid), self.cfg.resolved().train, seed=seed,
                       snapshot_steps=[] if rewind_at is None else [rewind_at], log=self.log,
                       progress=self.progress, checkpoints=checkpoints, epoch_seeded=self.resumable,
                       steps_per_epoch=self.steps_per_epoch, watch=watch)
        if task.level == 0:
            if rewind_at is not None and rewind_at > result.steps:
                raise UserError(f"--rewind_step={self.rewind.step} is step {rewind_at}, beyond level 0's "
                                f"{result.steps} training steps: choose an earlier step")
            self.run_dir.write_rewind(r, mm.snapshot() if self.rewind.end else result.snapshots[rewind_at])
        self.run_dir.write_weights(task, mm.snapshot())
        test = mm.evaluate(self.batches(self.data.test))
        # a resumed task's seconds include what its earlier attempts spent up to the checkpoint it resumed from
        seconds = time.perf_counter() - started + result.resumed_seconds
        metrics = task_metrics(task, self.seed(r), task_masks, result, test, seconds)
        if watch is not None:
            metrics[early_bird.NAME] = watch.summary(result.checks, result.watch_stopped)
        self.run_dir.write_metrics(task, metrics)
        if checkpoints is not None:
            checkpoints.clear()
        return metrics

    def rewind_iteration(self) -> int:
        return self.rewind.step.iteration(self.steps_per_epoch)


def build_masked(cfg: RunConfig, vocab_size: int, num_classes: int, seed: int, embedding_matrix=None,
                 resumable: bool = True) -> MaskedModel:
    """The masked model of `cfg`, its weights a pure function of `seed`: what every task builds (and what a
    transfer rebuilds its source's θ0 with). resumable: format-2 runs' reseedable dropout (lth_tf.rundir)."""
    keras_model = build_model(cfg.model, vocab_size, num_classes, seed, embedding_matrix, fast_lstm=True,
                              stateful_dropout=resumable, precision=cfg.train.precision)
    masked = TfmotMaskedModel if cfg.train.masking == "tfmot" else MaskedModel
    p = cfg.prune
    return masked(keras_model, num_classes, Selection(bias=p.prune_bias, embedding=p.prune_embedding,
                                                      output=p.prune_output))


class MissingInput(Exception):
    """A finished task's output that another task needs is missing or damaged."""

    def __init__(self, producer: Task, why: str):
        super().__init__(f"{producer.key}: {why}")
        self.producer = producer


def task_metrics(task: Task, seed: int, task_masks, result, test: dict, seconds: float) -> dict:
    report = masks_lib.sparsity_report(task_masks)
    return {
        "replicate": task.replicate, "branch": task.branch, "level": task.level, "seed": seed,
        "sparsity": report["overall"]["sparsity"],
        "sparsity_without_embedding": report["without_embedding"]["sparsity"],
        "remaining": report["overall"]["alive"] / report["overall"]["size"],
        "sparsity_by_tensor": {n: t["sparsity"] for n, t in report["tensors"].items()},
        "valid_loss": result.best["valid_loss"], "valid_accuracy": result.best["valid_accuracy"],
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "epochs_trained": result.epochs_trained, "best_epoch": result.best_epoch, "steps": result.steps,
        "seconds": seconds, "history": result.history, "cpu": machine.cpu(),
    }
