"""1. Mask overhead: seconds per training step, masked vs the same model and optimizer without masks.

Variants, each its own model (same seed) and its own fresh Adam, timed in interleaved blocks:
- `unmasked`: `MaskedModel`'s train step without the re-masking (common.unmasked_train_step);
- `masked`: `MaskedModel.make_train_step` as lth_tf trains today (every prunable weight multiplied by
  its mask after every Adam step, the padding row re-zeroed);
- `gradmask`: `lth_tf.fast_masking.GradientMaskedModel` (the gradients are masked instead; the
  embedding's sparse gradient by its gathered mask rows).
- `masked_but_embedding` (CNN only, a diagnostic, not a correct training scheme): `masked` with the
  embedding left out of the re-masking, to show where the overhead comes from.
For the LSTM the model is the one lth_tf builds (keras.layers.LSTM) and, as a second model, the same
with `lth_tf.nets.fast_lstm.FastLSTM`: the faster the model, the larger masking's relative cost.

Also checks that `gradmask` trains to the same weights as `masked` (max |difference| after a few steps).
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import SHAPES, Runner, build_keras, interleave, masked_model, synthetic_batches, \
    unmasked_train_step
from lth_tf.nets.fast_lstm import with_fast_lstm
from lth_tf.fast_masking import GradientMaskedModel
from lth_tf.keras import keras, tf
from lth_tf.training import MaskedModel

VARIANTS = ("unmasked", "masked", "gradmask")


class _MaskedButEmbedding(MaskedModel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pairs = [(v, m) for v, m in self._pairs if v is not self._embedding]


def _runner(shape, variant, batches, lstm_impl):
    model = build_keras(shape)
    if shape.model == "lstm" and lstm_impl != "keras":
        model = with_fast_lstm(model, lstm_impl)
    cls = {"gradmask": GradientMaskedModel, "masked_but_embedding": _MaskedButEmbedding}.get(variant, MaskedModel)
    mm = masked_model(model, cls)
    optimizer = keras.optimizers.Adam(learning_rate=5e-3)
    totals = tf.Variable(tf.zeros([3]), trainable=False)
    step = unmasked_train_step(mm, optimizer, totals) if variant == "unmasked" else mm.make_train_step(
        optimizer, totals)
    return Runner(step, batches, sync=totals.numpy)


def equivalence(shape, steps: int = 5) -> float:
    """Max |weight difference| between MaskedModel and GradientMaskedModel after `steps` identical steps."""
    batches = synthetic_batches(shape, steps, seed=3)
    finals = []
    for cls in (MaskedModel, GradientMaskedModel):
        keras.utils.set_random_seed(0)
        mm = masked_model(build_keras(shape), cls)
        optimizer = keras.optimizers.Adam(learning_rate=5e-3)
        totals = tf.Variable(tf.zeros([3]), trainable=False)
        step = mm.make_train_step(optimizer, totals)
        keras.utils.set_random_seed(1)
        for x, y in batches:
            step(tf.constant(x), tf.constant(y))
        finals.append(mm.snapshot())
    return float(max(np.max(np.abs(finals[0][n] - finals[1][n])) for n in finals[0]))


def run(quick: bool, log=print, shapes=SHAPES) -> dict:
    results = {}
    for shape in shapes:
        impls = ("keras", "hoisted") if shape.model == "lstm" else ("-",)
        for impl in impls:
            label = shape.name if impl == "-" else f"{shape.name}[{impl}]"
            k = shape.quick_steps if quick else shape.steps
            rounds = 3 if quick or shape.model == "lstm" else 9
            batches = synthetic_batches(shape, 4)
            log(f"mask overhead {label}: {k} steps per block, {rounds} rounds")
            variants = VARIANTS + (("masked_but_embedding",) if shape.model == "cnn" else ())
            runners = {v: _runner(shape, v, batches, impl) for v in variants}
            t = interleave({v: (lambda r=r: r.block(k)) for v, r in runners.items()}, rounds, log, label)
            base = t["unmasked"]["median"]
            results[label] = {
                "model": shape.model, "length": shape.length, "lstm": None if impl == "-" else impl,
                "steps_per_block": k, "rounds": rounds,
                "seconds_per_step": {v: t[v]["median"] for v in variants},
                "all_blocks": {v: t[v]["all"] for v in variants},
                "cpu_seconds_per_step": {v: t[v]["cpu_median"] for v in variants},
                "over_unmasked": {v: t[v]["median"] / base for v in variants},
                "min_over_unmasked_min": {v: t[v]["min"] / t["unmasked"]["min"] for v in variants},
                "masked_over_unmasked": t["masked"]["median"] / base,
                "gradmask_over_unmasked": t["gradmask"]["median"] / base,
            }
            log(f"  {label}: masked/unmasked {results[label]['masked_over_unmasked']:.3f}, "
                f"gradmask/unmasked {results[label]['gradmask_over_unmasked']:.3f}")
    cnn = next(s for s in shapes if s.model == "cnn") if any(s.model == "cnn" for s in shapes) else None
    if cnn is not None:
        diff = equivalence(cnn)
        results["gradmask_equivalence"] = {"shape": cnn.name, "steps": 5, "max_abs_weight_difference": diff}
        log(f"  gradmask vs masked after 5 steps ({cnn.name}): max |weight difference| {diff:.3g}")
    return results
