"""2. Peers: our masked training vs tfmot's fixed-sparsity pruning vs PyTorch's torch.nn.utils.prune.

Same shapes, same batch size, same synthetic batches (full-length random ids), one process per
framework, blocks interleaved in time. Variants:
- `ours`: lth_tf's design before gradient masking and FastLSTM: the weights re-masked after every step
  (`tests.oracles.RemaskingModel`, now the tests' oracle), keras.layers.LSTM;
- `ours_fast`: lth_tf as it trains: `lth_tf.training.MaskedModel` (gradient masking) and, for the LSTM,
  `lth_tf.nets.fast_lstm.FastLSTM` (hoisted input projection, hand-written recurrence gradient);
- `tfmot`: `prune_low_magnitude` (RegistryPruningPolicy; the BiLSTM wrapped as a PrunableLayer) with a
  ConstantSparsity(0.2) that fires at step 0 only (masks then fixed), the same custom loop and Adam,
  and the mandatory `UpdatePruningStep` callback;
- `torch_dense`, `torch_masked` (PyTorch 2.x, `torch.nn.utils.prune.custom_from_mask` on every
  parameter; the LSTM over packed sequences as in the study) in a child process; skipped if no torch.
"""
from __future__ import annotations

import tensorflow_model_optimization as tfmot

from benchmarks.common import BATCH, SHAPES, SPARSITY, Runner, TorchWorker, build_keras, interleave, \
    masked_model, synthetic_batches, torch_available, train_step
from lth_tf.keras import keras, tf
from lth_tf.nets.models import PadToMinLength, StudyEmbeddingInit, loss_fn
from lth_tf.sparsity.registry import RegistryPruningPolicy
from lth_tf.training import BATCH_SIGNATURE, MaskedModel
from tests.oracles import RemaskingModel

sparsity = tfmot.sparsity.keras


class PrunableBidirectional(keras.layers.Bidirectional, sparsity.PrunableLayer):
    """Bidirectional(LSTM) that tfmot accepts: both directions' kernels, recurrent kernels and biases."""

    def get_prunable_weights(self):
        return [w for layer in (self.forward_layer, self.backward_layer)
                for w in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)]


def _prunable_bidirectional(layer):
    if isinstance(layer, keras.layers.Bidirectional):
        return PrunableBidirectional(
            keras.layers.LSTM.from_config(layer.forward_layer.get_config()),
            backward_layer=keras.layers.LSTM.from_config(layer.backward_layer.get_config()),
            merge_mode=layer.merge_mode, name=layer.name)
    return layer


def tfmot_step(shape):
    """A tfmot-pruned copy of the model and its train step (masks chosen at step 0, then fixed)."""
    base = build_keras(shape)
    custom = {"PadToMinLength": PadToMinLength, "StudyEmbeddingInit": StudyEmbeddingInit,
              "PrunableBidirectional": PrunableBidirectional}
    with keras.utils.custom_object_scope(custom):
        model = keras.models.clone_model(base, clone_function=_prunable_bidirectional)
        schedule = sparsity.ConstantSparsity(SPARSITY, begin_step=0, end_step=0, frequency=1)
        pruned = sparsity.prune_low_magnitude(model, pruning_schedule=schedule,
                                              pruning_policy=RegistryPruningPolicy())
    optimizer = keras.optimizers.Adam(learning_rate=5e-3)
    loss = loss_fn(2)
    callback = sparsity.UpdatePruningStep()
    callback.set_model(pruned)
    callback.on_train_begin()

    @tf.function(input_signature=BATCH_SIGNATURE, reduce_retracing=True)
    def step(ids, labels):
        with tf.GradientTape() as tape:
            logits = pruned(ids, training=True)
            value = tf.reduce_mean(loss(tf.cast(labels[:, None], logits.dtype), logits))
        grads = tape.gradient(value, pruned.trainable_variables)
        optimizer.apply_gradients(zip(grads, pruned.trainable_variables))
        return value

    return pruned, step


def _ours(shape, fast: bool):
    return train_step(masked_model(build_keras(shape, fast_lstm=fast), MaskedModel if fast else RemaskingModel))


def run(quick: bool, log=print, shapes=SHAPES) -> dict:
    results = {}
    has_torch = torch_available()
    if not has_torch:
        log("peers: PyTorch is not installed (pip install torch): its columns are skipped")
    for shape in shapes:
        k = shape.quick_steps if quick else shape.steps
        rounds = 3 if quick or shape.model == "lstm" else 5
        batches = synthetic_batches(shape, 4)
        log(f"peers {shape.name}: {k} steps per block, {rounds} rounds")
        blocks = {}
        for name, fast in (("ours", False), ("ours_fast", True)):
            step, sync = _ours(shape, fast)
            runner = Runner(step, batches, sync=sync)
            blocks[name] = lambda r=runner: r.block(k)
        _, step = tfmot_step(shape)
        last = {}
        runner = Runner(lambda x, y: last.__setitem__("loss", step(x, y)), batches,
                        sync=lambda: last["loss"].numpy() if "loss" in last else None)
        blocks["tfmot"] = lambda r=runner: r.block(k)
        worker, torch_info = None, None
        if has_torch:
            variants = ["dense", "masked"] + (["dense_padded"] if shape.model == "lstm" and not quick else [])
            worker = TorchWorker(shape, variants)
            torch_info = worker.info
            for v in variants:
                blocks[f"torch_{v}"] = lambda v=v: worker.block(v, k)
        try:
            t = interleave(blocks, rounds, log, shape.name)
        finally:
            if worker is not None:
                worker.close()
        per_step = {n: v["median"] for n, v in t.items()}
        res = {"model": shape.model, "length": shape.length, "vocab": shape.vocab, "batch": BATCH,
               "steps_per_block": k, "rounds": rounds, "seconds_per_step": per_step,
               "samples_per_second": {n: BATCH / s for n, s in per_step.items()},
               "all_blocks": {n: v["all"] for n, v in t.items()}, "torch": torch_info,
               "cpu_seconds_per_step": {n: v["cpu_median"] for n, v in t.items()}}
        ratios = {"ours_over_tfmot": per_step["ours"] / per_step["tfmot"],
                  "ours_fast_over_tfmot": per_step["ours_fast"] / per_step["tfmot"]}
        if has_torch:
            ratios.update(ours_over_torch_masked=per_step["ours"] / per_step["torch_masked"],
                          ours_fast_over_torch_masked=per_step["ours_fast"] / per_step["torch_masked"],
                          ours_fast_over_torch_dense=per_step["ours_fast"] / per_step["torch_dense"])
        res["time_ratios"] = ratios
        results[shape.name] = res
        log(f"  {shape.name} samples/s: " + ", ".join(f"{n} {v:.0f}" for n, v in res["samples_per_second"].items()))
        log(f"  {shape.name} time ratios: " + ", ".join(f"{n} {v:.2f}" for n, v in ratios.items()))
    return results
