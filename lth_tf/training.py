"""Masked training: pruned weights stay exactly 0.0 through every optimizer step.

`MaskedModel` holds one mask variable per prunable weight and masks the GRADIENTS inside the compiled
train step. Re-masking the weights after every update (what a Keras constraint does) gives the same
trained weights bit for bit with Adam (no weight decay, no clipping), provided the pruned weights are
zero and Adam's moments are zero at the pruned positions when training starts, which `train` ensures (a
fresh Adam every level, masks applied to the weights by `set_masks`/`restore`): at a pruned position the
gradient is always 0, so m and v stay 0 and Adam's update m_hat / (sqrt(v_hat) + eps) is exactly 0. It
is cheaper: the embedding's gradient is an `IndexedSlices` of the looked-up rows, so only those rows of
its mask are gathered, instead of a dense read-multiply-write of the whole [vocab, dim] table every
step. The padding row's gradient is zeroed the same way, so it stays zero like PyTorch's `padding_idx`.
`tests/oracles.py` keeps the re-masking step as the oracle this is tested against.

`train` runs one level: a fresh Adam, E epochs, early stopping on validation loss with patience (the
counter resets on improvement) restoring the best epoch, and snapshots of the weights at requested
steps (for late rewinding). Accuracy counts every sample, never a mean of batch means. A `Watch`
(lth_tf.lottery.early_bird) may look at the weights after every epoch and every N steps, and end the level
there (its weights, not the best epoch's, are then the result); it reads the model and nothing else, so
the numbers are those of a level trained without it.

Mixed precision (`--precision=bfloat16`, lth_tf.nets.models.precision_policy): the model computes in
bfloat16, but its variables, and so the masks (float32, 0 or 1) and the gradients they multiply, are float32,
and the logits are float32: pruned weights stay exactly 0 and the loss, accuracy and Adam update are the
float32 ones. `--xla` compiles the train step with XLA (`jit_compile`); the pipeline then pads batches to a
few lengths (lth_tf.data.pipeline.XLA_LENGTH_BUCKETS) so it compiles a few times, not once per batch.
Evaluation accumulates its sums inside the compiled step (float64 variables, the same sums in the same
order as adding each batch's float32 sums in Python) and reads them once at the end.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from lth_tf.sparsity import registry
from lth_tf.config import TrainConfig
from lth_tf.keras import keras, tf
from lth_tf.sparsity.masks import Masks, validate_masks
from lth_tf.nets.models import EMBEDDING_LAYER, PAD_ID, loss_fn, predictions

Snapshot = dict[str, np.ndarray]
BATCH_SIGNATURE = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32))


class MaskedModel:
    """A Keras model, its prunable weights by stable name, and the masks that hold pruned weights at 0."""

    def __init__(self, model: keras.Model, num_classes: int, selection: registry.Selection = registry.Selection()):
        self.model, self.num_classes = model, num_classes
        self.prunable = registry.prunable_weights(model, selection)
        self.weights = registry.all_weights(model)
        self._mask_vars = {name: tf.Variable(tf.ones(v.shape, v.dtype), trainable=False, name=f"mask_{i}")
                           for i, (name, v) in enumerate(self.prunable.items())}
        self._pairs = [(self.prunable[n], self._mask_vars[n]) for n in self.prunable]
        # The padding row stays zero, like PyTorch's `padding_idx` in the study (not counted as pruned).
        self._embedding = self.weights.get(f"{EMBEDDING_LAYER}/embeddings")
        self._loss = loss_fn(num_classes)
        # (loss sum, correct, samples) of an evaluation, float64: adding each batch's float32 sums to it gives
        # exactly what adding them to a Python float did (float32 -> float64 is exact; same order).
        self._eval_totals = tf.Variable(tf.zeros([3], tf.float64), trainable=False, name="eval_totals")
        self._eval_step = tf.function(self._eval_batch, input_signature=BATCH_SIGNATURE, reduce_retracing=True)
        self._eval_accumulate = tf.function(self._eval_and_accumulate, input_signature=BATCH_SIGNATURE,
                                            reduce_retracing=True)

    @property
    def shapes(self) -> dict[str, tuple]:
        return {name: tuple(v.shape) for name, v in self.prunable.items()}

    def masks(self) -> Masks:
        return {name: m.numpy().astype(bool) for name, m in self._mask_vars.items()}

    def set_masks(self, masks: Masks) -> None:
        validate_masks(masks, self.shapes)
        for name, m in self._mask_vars.items():
            m.assign(np.asarray(masks[name], dtype=m.dtype.as_numpy_dtype))
        self.apply_masks()

    def apply_masks(self) -> None:
        for var, mask in self._pairs:
            var.assign(var * mask)
        if self._embedding is not None:
            self._embedding.scatter_update(
                tf.IndexedSlices(tf.zeros([1, self._embedding.shape[1]], self._embedding.dtype), [PAD_ID]))

    def snapshot(self) -> Snapshot:
        """All weights by stable name (not the masks)."""
        return {name: v.numpy().copy() for name, v in self.weights.items()}

    def prunable_values(self) -> Snapshot:
        return {name: v.numpy() for name, v in self.prunable.items()}

    def restore(self, snapshot: Snapshot, names: Iterable[str] | None = None) -> None:
        """Load weights by name (all, or `names`), then re-apply the masks: the masks are never touched."""
        for name in (names if names is not None else self.weights):
            self.weights[name].assign(snapshot[name])
        self.apply_masks()

    def _eval_batch(self, ids, labels):
        """(sum of the batch's losses, number correct), float32 whatever the model computes in."""
        logits = tf.cast(self.model(ids, training=False), tf.float32)
        loss = self._batch_loss(labels, logits)
        correct = tf.reduce_sum(tf.cast(tf.equal(predictions(logits, self.num_classes), labels), tf.float32))
        return tf.reduce_sum(loss), correct

    def _eval_and_accumulate(self, ids, labels):
        batch_loss, correct = self._eval_batch(ids, labels)
        n = tf.cast(tf.shape(labels)[0], tf.float64)
        self._eval_totals.assign_add(tf.stack([tf.cast(batch_loss, tf.float64), tf.cast(correct, tf.float64), n]))

    def _batch_loss(self, labels, logits):
        if self.num_classes == 2:
            return self._loss(tf.cast(labels[:, None], logits.dtype), logits)
        return self._loss(labels, logits)

    def evaluate(self, batches: Iterable) -> dict:
        """Loss and accuracy over every sample of `batches`: the sums are accumulated inside the compiled step
        and read once at the end (no host round-trip per batch)."""
        self._eval_totals.assign(tf.zeros([3], tf.float64))
        for ids, labels in batches:
            self._eval_accumulate(ids, labels)
        loss_sum, correct, n = (float(v) for v in self._eval_totals.numpy())
        if n == 0:
            raise ValueError("evaluate() got no samples")
        return {"loss": loss_sum / n, "accuracy": correct / n, "n": int(n)}

    def make_train_step(self, optimizer: keras.optimizers.Optimizer, totals: tf.Variable, jit_compile: bool = False):
        """A compiled step: forward, backward, masked gradients, Adam update; accumulates (loss, correct, n).
        jit_compile: compile it with XLA (once per input shape: feed it a few shapes only)."""
        variables = self.model.trainable_variables
        mask_of = {id(var): mask for var, mask in self._pairs}
        gradient_masks = [mask_of.get(id(v)) for v in variables]
        self.apply_masks()  # the precondition (module docstring): pruned weights and the padding row are zero

        def step(ids, labels):
            with tf.GradientTape() as tape:
                logits = tf.cast(self.model(ids, training=True), tf.float32)  # float32 already: a no-op
                per_sample = self._batch_loss(labels, logits)
                loss = tf.reduce_mean(per_sample)
            grads = tape.gradient(loss, variables)
            self._apply_update(optimizer, variables, grads, gradient_masks)
            correct = tf.reduce_sum(tf.cast(tf.equal(predictions(logits, self.num_classes), labels), tf.float32))
            totals.assign_add(tf.stack([tf.reduce_sum(per_sample), correct,
                                        tf.cast(tf.shape(labels)[0], tf.float32)]))

        return tf.function(step, input_signature=BATCH_SIGNATURE, reduce_retracing=True,
                           jit_compile=True if jit_compile else None)

    def _apply_update(self, optimizer, variables, grads, gradient_masks) -> None:
        grads = [self._masked_gradient(v, g, m) for v, g, m in zip(variables, grads, gradient_masks)]
        optimizer.apply_gradients(zip(grads, variables))

    def _masked_gradient(self, var, grad, mask):
        is_embedding = self._embedding is not None and var is self._embedding
        if grad is None or (mask is None and not is_embedding):
            return grad
        if isinstance(grad, tf.IndexedSlices):
            values = grad.values
            if mask is not None:
                values = values * tf.gather(mask, grad.indices)
            if is_embedding:
                values = values * tf.cast(tf.not_equal(grad.indices, PAD_ID), values.dtype)[:, None]
            return tf.IndexedSlices(values, grad.indices, grad.dense_shape)
        if mask is not None:
            grad = grad * mask
        if is_embedding:
            keep = tf.tensor_scatter_nd_update(tf.ones([var.shape[0], 1], grad.dtype), [[PAD_ID]],
                                               tf.zeros([1, 1], grad.dtype))
            grad = grad * keep
        return grad


@dataclasses.dataclass
class TrainResult:
    history: list[dict]
    best_epoch: int
    epochs_trained: int
    steps: int
    seconds: float  # training's wall time, earlier attempts' included
    snapshots: dict[int, Snapshot]
    checks: list[dict] = dataclasses.field(default_factory=list)
    watch_stopped: bool = False
    resumed_seconds: float = 0.0  # the part of `seconds` that attempts before this one spent (their checkpoint's)

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch - 1]


@dataclasses.dataclass
class Progress:
    """The loop's state between epochs: with the weights, Adam's state, the best epoch's weights and the
    snapshots taken so far, it is what a checkpoint holds."""
    epoch: int = 0
    step: int = 0
    best_loss: float = float("inf")
    best_epoch: int = 0
    waited: int = 0
    stopped: bool = False
    seconds: float = 0.0
    history: list = dataclasses.field(default_factory=list)
    checks: list = dataclasses.field(default_factory=list)  # a Watch's records, saved with the checkpoint
    watch_stopped: bool = False  # the Watch ended the level: keep its last weights


@dataclasses.dataclass
class Checkpoint:
    progress: Progress
    weights: Snapshot
    optimizer: list[np.ndarray]
    best_weights: Snapshot | None
    snapshots: dict[int, Snapshot]


class Checkpoints(Protocol):
    """Where a level's checkpoints live (lth_tf.rundir.TaskCheckpoints)."""

    def load(self) -> Checkpoint | None: ...

    def save(self, checkpoint: Checkpoint) -> None: ...


class Watch(Protocol):
    """Looks at the model during a level (lth_tf.lottery.early_bird.EarlyBird): after every epoch, and every
    `every_steps` steps if that is above 0. `start` gets the records of the checks made before a resume."""
    every_steps: int

    def start(self, mm: MaskedModel, checks: list[dict]) -> None: ...

    def check(self, mm: MaskedModel, step: int, epoch: int) -> tuple[dict, bool]:
        """(a record of this check, whether the level ends here)"""


def _look(watch: Watch, mm: MaskedModel, state: "Progress", epoch: int) -> bool:
    record, stop = watch.check(mm, state.step, epoch)
    state.checks.append(record)
    state.watch_stopped = state.watch_stopped or stop
    return stop


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, with the epoch it struck."""

    def __init__(self, epoch: int):
        super().__init__(f"epoch {epoch}")
        self.epoch = epoch


def seed_dropout(model: keras.Model, seed: int) -> None:
    """Reset every dropout generator from (seed, layer index): with `epoch_seeded` training, an epoch's
    dropout masks are a function of (seed, epoch) alone, so a level resumed at an epoch replays it exactly."""
    for i, layer in enumerate(model.layers):
        generator = getattr(layer, "_random_generator", None)
        if generator is None or generator._rng_type != "stateful":
            continue
        generator._maybe_init()
        generator._generator.reset_from_seed(int(np.random.SeedSequence([seed, i]).generate_state(1)[0]))


def train(mm: MaskedModel, train_batches: Callable[[int], Iterable], valid_batches: Callable[[], Iterable],
          cfg: TrainConfig, seed: int, snapshot_steps: Sequence[int] = (), log: Callable[[str], None] = print,
          progress: bool = True, checkpoints: Checkpoints | None = None, epoch_seeded: bool = False,
          steps_per_epoch: int | None = None, watch: Watch | None = None) -> TrainResult:
    """Train one level from the model's current weights and masks.

    `train_batches(epoch)` gives epoch `epoch`'s batches (its order a function of the epoch), and
    `valid_batches()` the validation batches. `snapshot_steps`: optimizer steps after which the weights
    are recorded (step 0 = before training). With `checkpoints`, the state is saved after every epoch and
    training resumes from the last one saved; with `epoch_seeded` (models built with stateful dropout
    generators), each epoch's dropout is seeded by (seed, epoch), so a resumed level ends bit-identical.
    `watch`: see `Watch`; a level it ends keeps the weights it ended at.
    """
    keras.utils.set_random_seed(seed)  # dropout: the same seed gives the same run, whatever ran before
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    totals = tf.Variable(tf.zeros([3]), trainable=False)
    wanted = set(int(s) for s in snapshot_steps)
    state, best_weights, snapshots = Progress(), None, {}
    saved = checkpoints.load() if checkpoints is not None else None
    if saved is not None:
        mm.restore(saved.weights)
        optimizer.build(mm.model.trainable_variables)
        for var, value in zip(optimizer.variables, saved.optimizer, strict=True):
            var.assign(value)
        state, best_weights, snapshots = saved.progress, saved.best_weights, saved.snapshots
        log(f"  resuming after epoch {state.epoch} (step {state.step})")
    elif 0 in wanted:
        snapshots[0] = mm.snapshot()
    if watch is not None:
        watch.start(mm, state.checks)
    step_fn = mm.make_train_step(optimizer, totals, jit_compile=cfg.xla)
    resumed_seconds = state.seconds  # spent by earlier attempts (0 unless resumed)
    start = time.perf_counter() - resumed_seconds
    epoch = state.epoch
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            if state.stopped:
                break
            epoch_start = time.perf_counter()
            if epoch_seeded:
                seed_dropout(mm.model, int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
            totals.assign(tf.zeros([3]))
            if progress:
                print(f"epoch {epoch}/{cfg.epochs}", flush=True)
            bar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["loss", "acc"],
                                      verbose=1 if progress else 0, unit_name="batch")
            for i, (ids, labels) in enumerate(train_batches(epoch), start=1):
                step_fn(ids, labels)
                state.step += 1
                if state.step in wanted:
                    snapshots[state.step] = mm.snapshot()
                if watch is not None and watch.every_steps and state.step % watch.every_steps == 0 \
                        and _look(watch, mm, state, epoch):
                    break  # mid-epoch: the partial epoch is validated and recorded below
                if progress and i % 25 == 0:
                    t = totals.numpy()
                    bar.update(i, [("loss", t[0] / t[2]), ("acc", t[1] / t[2])])
            if watch is not None and not (state.checks and state.checks[-1]["step"] == state.step):
                _look(watch, mm, state, epoch)
            t = totals.numpy()
            valid = mm.evaluate(valid_batches())
            record = {"epoch": epoch, "train_loss": float(t[0] / t[2]), "train_accuracy": float(t[1] / t[2]),
                      "valid_loss": valid["loss"], "valid_accuracy": valid["accuracy"], "steps": state.step,
                      "seconds": time.perf_counter() - epoch_start}
            state.history.append(record)
            if progress:
                print()
            log(f"  epoch {epoch:2d}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f} | "
                f"valid loss {valid['loss']:.4f} acc {valid['accuracy']:.4f} | {record['seconds']:.1f}s")
            state.epoch = epoch
            if valid["loss"] < state.best_loss:
                state.best_loss, state.best_epoch, state.waited = valid["loss"], epoch, 0
                if cfg.patience > 0:
                    best_weights = mm.snapshot()
            else:
                state.waited += 1
                state.stopped = cfg.patience > 0 and state.waited >= cfg.patience
            state.stopped = state.stopped or state.watch_stopped
            if checkpoints is not None:
                state.seconds = time.perf_counter() - start
                checkpoints.save(Checkpoint(state, mm.snapshot(), [v.numpy() for v in optimizer.variables],
                                            best_weights, {s: snapshots[s] for s in snapshots}))
    except KeyboardInterrupt:
        raise Interrupted(epoch) from None
    best_epoch = state.best_epoch
    if cfg.patience > 0 and best_weights is not None and not state.watch_stopped:
        mm.restore(best_weights)
    else:
        best_epoch = len(state.history)  # no early stopping, or the watch ended it: the last epoch is the result
    return TrainResult(history=state.history, best_epoch=best_epoch, epochs_trained=len(state.history),
                       steps=state.step, seconds=time.perf_counter() - start, snapshots=snapshots,
                       checks=state.checks, watch_stopped=state.watch_stopped,
                       resumed_seconds=resumed_seconds)
