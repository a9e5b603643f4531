"""1. Mask overhead: seconds per training step, masked vs the same model and optimizer without masks.

Variants, each its own model (same seed) and its own fresh Adam, timed in interleaved blocks:
- `unmasked`: `MaskedModel`'s train step without any masking (common.UnmaskedModel);
- `masked`: the re-masking design, `tests.oracles.RemaskingModel` (every prunable weight multiplied by
  its mask after every Adam step, the padding row re-zeroed), what lth_tf trained with before gradient
  masking and now the oracle that the tests hold `MaskedModel` to;
- `gradmask`: `lth_tf.training.MaskedModel`, what lth_tf trains with (the gradients are masked instead;
  the embedding's sparse gradient by its gathered mask rows).
- `masked_but_embedding` (CNN only, a diagnostic, not a correct training scheme): `masked` with the
  embedding left out of the re-masking, to show where the overhead comes from.
For the LSTM the model is built with keras.layers.LSTM and, as a second model, with
`lth_tf.nets.fast_lstm.FastLSTM` (what lth_tf trains with): the faster the model, the larger masking's
relative cost.

Also checks that `gradmask` trains to the same weights as `masked` (max |difference| after a few steps).
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import SHAPES, Runner, UnmaskedModel, build_keras, interleave, masked_model, \
    synthetic_batches, train_step
from lth_tf.keras import keras, tf
from lth_tf.training import MaskedModel
from tests.oracles import RemaskingModel

VARIANTS = ("unmasked", "masked", "gradmask")


class _MaskedButEmbedding(RemaskingModel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pairs = [(v, m) for v, m in self._pairs if v is not self._embedding]


MODELS = {"unmasked": UnmaskedModel, "masked": RemaskingModel, "gradmask": MaskedModel,
          "masked_but_embedding": _MaskedButEmbedding}


def _runner(shape, variant, batches, lstm_impl):
    mm = masked_model(build_keras(shape, fast_lstm=lstm_impl == "hoisted"), MODELS[variant])
    step, sync = train_step(mm)
    return Runner(step, batches, sync=sync)


def equivalence(shape, steps: int = 5) -> float:
    """Max |weight difference| between RemaskingModel and MaskedModel after `steps` identical steps."""
    batches = synthetic_batches(shape, steps, seed=3)
    finals = []
    for cls in (RemaskingModel, MaskedModel):
        keras.utils.set_random_seed(0)
        mm = masked_model(build_keras(shape), cls)
        step, _ = train_step(mm)
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
