"""Numerical check: FastLSTM (lth_tf.nets.fast_lstm, "hoisted") and the research variants of
benchmarks.lstm_variants against keras.layers.LSTM, same weights, padded texts.

Prints the largest absolute difference of the first BiLSTM layer's output sequence, of the logits and of
every weight's gradient, for each CPU implementation.

    python -m benchmarks.fast_lstm_check
"""
from __future__ import annotations

import numpy as np

from benchmarks.lstm_variants import with_fast_lstm
from lth_tf.config import ModelConfig
from lth_tf.keras import keras, tf
from lth_tf.nets.models import build_lstm, loss_fn
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


if __name__ == "__main__":
    check()
    check(scale=4.0)
