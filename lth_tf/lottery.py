"""Iterative magnitude pruning, one (replicate, level, branch) task at a time.

Level 0 trains the dense network from θ0 and records the rewind point. Level L >= 1 of a trajectory
takes the mask that level L-1 pruned from its trained weights, puts the survivors back to the rewind
point and trains. Branches at a level:

- `ticket`: the IMP trajectory. Rewinds to θ0 (winning ticket), to step k of level 0 (`--late_rewind`),
  or restarts from the end of dense training (`--finetune`, the study's "late rewinding" table).
- `reinit`: the ticket's mask, fresh random init from the same distribution (Frankle & Carbin's control).
- `random_mask`: a random mask with the ticket's per-tensor sparsity, started like the ticket.
- `study_random`: the study's "random" mode, a trajectory of its own: it prunes its own trained weights
  and re-initialises the survivors at random every level.

Each task reads its inputs from the run directory and writes its outputs there atomically, finishing
with `metrics.json`: a task whose metrics exist is done, so a rerun resumes, and tasks whose inputs
exist can run anywhere in any order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import time

import numpy as np

from lth_tf import atomic
from lth_tf.sparsity import masks as masks_lib
from lth_tf.config import RunConfig
from lth_tf.data import PreparedData, make_dataset
from lth_tf.errors import UserError
from lth_tf.fast_masking import GradientMaskedModel
from lth_tf.keras import keras
from lth_tf.nets.models import build_model
from lth_tf.sparsity.pruning import prune, random_masks_like
from lth_tf.sparsity.registry import Selection
from lth_tf.training import MaskedModel, train

TRAJECTORIES = ("ticket", "study_random")  # branches whose trained weights choose their next mask


@dataclasses.dataclass(frozen=True)
class Task:
    replicate: int
    level: int
    branch: str

    @property
    def key(self) -> str:
        return f"r{self.replicate}/level_{self.level:02d}/{self.branch}"


def plan(levels: int, branches: list[str], replicates: int) -> list[Task]:
    """Every task of the experiment, each after the tasks it depends on."""
    tasks = []
    for r in range(replicates):
        tasks.append(Task(r, 0, "ticket"))  # the dense level, shared by every branch
        for level in range(1, levels + 1):
            tasks += [Task(r, level, b) for b in branches]
    return tasks


def derive_seed(*parts) -> int:
    """A seed for one purpose of one task, independent of what else ran before it."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16) % 2**20


def parse_step(step: str, steps_per_epoch: int) -> int:
    """'438it' -> 438, '1ep' -> steps_per_epoch, '1ep20it' -> steps_per_epoch + 20 (open_lth's notation)."""
    m = re.fullmatch(r"\s*(?:(\d+)ep)?\s*(?:(\d+)it)?\s*", step or "")
    if not step or not m or (m.group(1) is None and m.group(2) is None):
        raise UserError(f"--rewind_step={step!r}: write '<n>it', '<n>ep' or '<n>ep<m>it', e.g. 438it or 1ep")
    return int(m.group(1) or 0) * steps_per_epoch + int(m.group(2) or 0)


class Experiment:
    def __init__(self, cfg: RunConfig, run_dir: str, data: PreparedData, embedding_matrix=None,
                 log=print, progress: bool = True):
        self.cfg, self.run_dir, self.data, self.log, self.progress = cfg, run_dir, data, log, progress
        self.embedding_matrix = embedding_matrix
        self.steps_per_epoch = math.ceil(len(data.train) / cfg.train.batch_size)
        p = cfg.prune
        self.selection = Selection(bias=p.prune_bias, embedding=p.prune_embedding, output=p.prune_output)

    # --- paths -------------------------------------------------------------------------------------
    def path(self, task: Task, name: str) -> str:
        return os.path.join(self.run_dir, task.key, name)

    def is_done(self, task: Task) -> bool:
        return os.path.exists(self.path(task, "metrics.json"))

    def rewind_step(self) -> int:
        e = self.cfg.experiment
        if e.finetune:
            return -1  # the end of dense training
        return parse_step(e.rewind_step, self.steps_per_epoch) if e.late_rewind else 0

    # --- building blocks ---------------------------------------------------------------------------
    def seed(self, r: int) -> int:
        return self.cfg.experiment.seed + r

    def model(self, r: int) -> MaskedModel:
        """A freshly built model for every task: Keras layers carry random-generator state from one
        training to the next, and a task must give the same numbers whether it runs after others in
        this process or first in a resumed one."""
        keras.backend.clear_session()
        return self._build(self.seed(r))

    def _build(self, seed: int) -> MaskedModel:
        keras_model = build_model(self.cfg.model, len(self.data.vocab), self.data.num_classes, seed,
                                  self.embedding_matrix, fast_lstm=True)
        return GradientMaskedModel(keras_model, self.data.num_classes, self.selection)

    def random_init(self, r: int, level: int, branch: str) -> dict:
        """Fresh weights from the same distribution as θ0, seeded by (replicate, level, branch)."""
        return self._build(derive_seed(self.seed(r), "init", level, branch)).snapshot()

    def masks(self, task: Task, shapes: dict) -> masks_lib.Masks:
        if task.level == 0:
            return masks_lib.dense_masks(shapes)
        # Level 1's mask is pruned from the dense level, which both trajectories share.
        owner = "study_random" if task.branch == "study_random" and task.level > 1 else "ticket"
        imp_masks = masks_lib.load_masks(self.path(Task(task.replicate, task.level, owner), "mask.npz"))
        if task.branch == "random_mask":
            return random_masks_like(imp_masks, derive_seed(self.seed(task.replicate), "mask", task.level))
        return imp_masks

    def start_weights(self, task: Task) -> dict:
        r = task.replicate
        if task.level == 0:
            return self._build(self.seed(r)).snapshot()  # θ0, the same for every replicate's rerun
        if task.branch in ("reinit", "study_random"):
            return self.random_init(r, task.level, task.branch)
        return atomic.read_npz(os.path.join(self.run_dir, f"r{r}", "rewind.npz"))

    def batches(self, split, seed=None):
        return make_dataset(split, self.cfg.train.batch_size, shuffle_seed=seed, bucket=self.cfg.train.bucket,
                            max_len=self.cfg.data.max_len)

    # --- one task: the IMP loop's body ---------------------------------------------------------------
    def run(self, task: Task) -> dict:
        if self.is_done(task):
            return atomic.read_json(self.path(task, "metrics.json"))
        r, started = task.replicate, time.perf_counter()
        mm = self.model(r)
        task_masks = self.masks(task, mm.shapes)
        mm.set_masks(task_masks)
        mm.restore(self.start_weights(task))
        if task.branch == "random_mask" or task.level == 0:
            masks_lib.save_masks(self.path(task, "mask.npz"), task_masks)
        seed = derive_seed(self.seed(r), task.level, task.branch)
        rewind_step = self.rewind_step() if task.level == 0 else None
        result = train(mm, lambda epoch: self.batches(self.data.train, derive_seed(seed, "epoch", epoch)),
                       lambda: self.batches(self.data.valid), self.cfg.train, seed=seed,
                       snapshot_steps=[rewind_step] if rewind_step is not None and rewind_step >= 0 else [],
                       log=self.log, progress=self.progress)
        if task.level == 0:
            if rewind_step is not None and rewind_step > result.steps:
                raise UserError(f"--rewind_step={self.cfg.experiment.rewind_step} is step {rewind_step}, beyond "
                                f"level 0's {result.steps} training steps: choose an earlier step")
            rewind = mm.snapshot() if rewind_step == -1 else result.snapshots[rewind_step]
            atomic.write_npz(os.path.join(self.run_dir, f"r{r}", "rewind.npz"), rewind, compressed=False)
        if task.branch in TRAJECTORIES:  # also after the last level, so a rerun with more --levels extends it
            next_masks = prune(task_masks, mm.prunable_values(), self.cfg.prune.prune_fraction,
                               self.cfg.prune.strategy)
            masks_lib.save_masks(self.path(Task(r, task.level + 1, task.branch), "mask.npz"), next_masks)
        atomic.write_npz(self.path(task, "weights.npz"), mm.snapshot())  # trained weights, for export
        test = mm.evaluate(self.batches(self.data.test))
        report = masks_lib.sparsity_report(task_masks)
        best = result.best
        metrics = {
            "replicate": r, "branch": task.branch, "level": task.level, "seed": self.seed(r),
            "sparsity": report["overall"]["sparsity"],
            "sparsity_without_embedding": report["without_embedding"]["sparsity"],
            "remaining": report["overall"]["alive"] / report["overall"]["size"],
            "sparsity_by_tensor": {n: t["sparsity"] for n, t in report["tensors"].items()},
            "valid_loss": best["valid_loss"], "valid_accuracy": best["valid_accuracy"],
            "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "epochs_trained": result.epochs_trained, "best_epoch": result.best_epoch, "steps": result.steps,
            "seconds": time.perf_counter() - started, "history": result.history,
        }
        atomic.write_json(self.path(task, "metrics.json"), metrics)
        return metrics
