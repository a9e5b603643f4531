"""Numerical check: FastLSTM (lth_tf.nets.fast_lstm, "hoisted") and the research variants of
benchmarks.lstm_variants against keras.layers.LSTM, same weights, padded texts.

Prints the largest absolute difference of the first BiLSTM layer's output sequence, of the logits and of
every weight's gradient, for each CPU implementation.

    python -m benchmarks.fast_lstm_check [--bfloat16]

--bfloat16 (`check_bfloat16`): FastLSTM under --precision=bfloat16 (Keras' mixed_bfloat16 policy) against
Keras' LSTM in bfloat16 and in float32, same float32 weights: the largest logit difference, and per weight
tensor max|dg| / max|g| and ||dg|| / ||g|| (the worst tensor). tests/test_precision.py calls it and holds it to bounds.
"""
from __future__ import annotations

import numpy as np

from benchmarks.lstm_variants import with_fast_lstm
from lth_tf.config import ModelConfig
from lth_tf.keras import keras, tf
from lth_tf.nets.models import build_lstm, build_model, loss_fn
from lth_tf.sparsity import registry


def padded_ids(rng, batch, timesteps, vocab, lengths=None):
    if lengths is None:
        lengths = rng.integers(0, timesteps + 1, size=batch)
        lengths[:3] = [timesteps, 1, 0]
    ids = rng.integers(2, vocab, size=(batch, timesteps)).astype(np.int32)
    ids[np.arange(timesteps)[None, :] >= lengths[:, None]] = 0
    return ids


def check(impls=("hoisted_fused", "hoisted", "block", "scan"), hidden=32, timesteps=13, batch=16, vocab=500, seed=0, scale=1.0,
          log=print) -> dict:
    cfg = ModelConfig(model="lstm", hidden=hidden, embedding_dim=20)
    base = build_lstm(cfg, vocab, 2, seed)
    if scale != 1.0:  # large weights: saturated gates and cell states far beyond any clipping threshold
        base.set_weights([w * scale for w in base.get_weights()])
    rng = np.random.default_rng(seed)
    ids = tf.constant(padded_ids(rng, batch, timesteps, vocab))
    labels = tf.constant(rng.integers(0, 2, size=(batch, 1)).astype(np.float32))
    loss = loss_fn(2)

    def run(model):
        seq_model = keras.Model(model.input, model.get_layer("bilstm1").output)
        with tf.GradientTape() as tape:
            logits = model(ids, training=False)
            value = tf.reduce_sum(loss(labels, logits))
        names = registry.all_weights(model)
        grads = tape.gradient(value, list(names.values()))
        grads = {n: tf.convert_to_tensor(g).numpy() for n, g in zip(names, grads)}
        return seq_model(ids, training=False).numpy(), logits.numpy(), grads

    ref_seq, ref_logits, ref_grads = run(base)
    out = {}
    for impl in impls:
        fuse = impl == "hoisted_fused"
        fast = with_fast_lstm(base, "hoisted" if fuse else impl, fuse=fuse)
        assert list(registry.prunable_weights(fast)) == list(registry.prunable_weights(base))
        seq, logits, grads = run(fast)
        out[impl] = {
            "bilstm1_outputs": float(np.max(np.abs(seq - ref_seq))),
            "logits": float(np.max(np.abs(logits - ref_logits))),
            "gradients": float(max(np.max(np.abs(grads[n] - ref_grads[n])) for n in ref_grads)),
            "gradient_scale": float(max(np.max(np.abs(g)) for g in ref_grads.values())),
        }
        log(f"FastLSTM[{impl}] vs keras LSTM (hidden {hidden}, {timesteps} steps, lengths 0..{timesteps}, "
            f"weights x{scale:g}): "
            f"max |diff| outputs {out[impl]['bilstm1_outputs']:.2e}, logits {out[impl]['logits']:.2e}, "
            f"gradients {out[impl]['gradients']:.2e} (largest gradient {out[impl]['gradient_scale']:.2e})")
    return out


def check_bfloat16(hidden=32, timesteps=13, batch=16, vocab=500, seed=0, scale=1.0, log=print) -> dict:
    cfg = ModelConfig(model="lstm", hidden=hidden, embedding_dim=20)
    rng = np.random.default_rng(seed)
    ids = tf.constant(padded_ids(rng, batch, timesteps, vocab))
    labels = tf.constant(rng.integers(0, 2, size=(batch, 1)).astype(np.float32))
    weights = [w * scale for w in build_model(cfg, vocab, 2, seed).get_weights()]

    def run(precision, fast):
        model = build_model(cfg, vocab, 2, seed, fast_lstm=fast, precision=precision)
        model.set_weights(weights)
        names = registry.all_weights(model)
        with tf.GradientTape() as tape:
            logits = model(ids, training=False)
            value = tf.reduce_sum(loss_fn(2)(labels, logits))
        grads = tape.gradient(value, list(names.values()))
        return logits.numpy(), {n: tf.convert_to_tensor(g).numpy() for n, g in zip(names, grads)}

    fast = run("bfloat16", True)
    out = {}
    for name, ref in (("keras_bfloat16", run("bfloat16", False)), ("keras_float32", run("float32", False))):
        (la, ga), (lb, gb) = fast, ref
        nonzero = [n for n in gb if np.any(gb[n])]
        out[name] = {"logits": float(np.max(np.abs(la - lb))), "logit_scale": float(np.max(np.abs(lb))),
                     "gradient_max_rel": max(float(np.max(np.abs(ga[n] - gb[n])) / np.max(np.abs(gb[n])))
                                             for n in nonzero),
                     "gradient_norm_rel": max(float(np.linalg.norm(ga[n] - gb[n]) / np.linalg.norm(gb[n]))
                                              for n in nonzero),
                     "gradient_max_abs": max(float(np.max(np.abs(ga[n] - gb[n]))) for n in gb),
                     "gradient_scale": max(float(np.max(np.abs(g))) for g in gb.values())}
        o = out[name]
        log(f"FastLSTM bfloat16 vs {name} (hidden {hidden}, {timesteps} steps, weights x{scale:g}): max |diff| logits "
            f"{o['logits']:.2e} (largest {o['logit_scale']:.2f}); gradients {o['gradient_max_abs']:.2e} (largest "
            f"{o['gradient_scale']:.2e}); worst tensor max|dg|/max|g| {o['gradient_max_rel']:.4f}, "
            f"||dg||/||g|| {o['gradient_norm_rel']:.4f}")
    return out


if __name__ == "__main__":
    import sys
    if "--bfloat16" in sys.argv[1:]:
        check_bfloat16()
        check_bfloat16(scale=4.0)
        check_bfloat16(hidden=64, timesteps=60, batch=32)
    else:
        check()
        check(scale=4.0)
