"""--precision=bfloat16: Keras' mixed_bfloat16 policy per model build, float32 weights, masks, gradients, logits
and loss; pruned weights exactly zero under Adam; FastLSTM's hand-written gradient in bfloat16."""
import numpy as np
import pytest

from benchmarks.fast_lstm_check import check_bfloat16
from helpers import synthetic_batches
from lth_tf.config import ModelConfig, TrainConfig
from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID, build_model, precision_policy
from lth_tf.sparsity import registry
from lth_tf.sparsity.pruning import prune_local
from lth_tf.training import MaskedModel, train

TINY = {"cnn": ModelConfig(model="cnn", embedding_dim=16, filters=8),
        "lstm": ModelConfig(model="lstm", embedding_dim=8, hidden=8)}


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_bfloat16_build_leaves_the_global_policy_and_the_weights_alone(kind):
    before = keras.mixed_precision.global_policy().name
    m16 = build_model(TINY[kind], 300, 2, seed=4, fast_lstm=True, precision="bfloat16")
    assert keras.mixed_precision.global_policy().name == before == "float32"
    m32 = build_model(TINY[kind], 300, 2, seed=4, fast_lstm=True)
    w16, w32 = registry.all_weights(m16), registry.all_weights(m32)
    assert list(w16) == list(w32)  # same names: masks, snapshots and .npz files are interchangeable
    for name in w32:
        assert w16[name].dtype == tf.float32  # float32 master weights
        np.testing.assert_array_equal(w16[name].numpy(), w32[name].numpy())
    assert m16.get_layer("embedding").compute_dtype == "bfloat16"
    assert m16.get_layer("output").compute_dtype == "float32" and m32.get_layer("output").compute_dtype == "float32"
    assert all(layer.compute_dtype == "float32" for layer in m32.layers if layer.name != "token_ids")
    ids = tf.constant([[5, 6, 7, 8, 9, 0, 0]], tf.int32)
    assert m16(ids).dtype == tf.float32  # float32 logits
    with precision_policy("bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_bfloat16_gradients_are_float32_and_masking_keeps_them_exact(kind):
    mm = MaskedModel(build_model(TINY[kind], 300, 2, seed=1, fast_lstm=True, precision="bfloat16"), 2)
    assert all(m.dtype == tf.float32 for m in mm._mask_vars.values())
    ids, labels = next(iter(synthetic_batches()()))
    variables = mm.model.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(mm._batch_loss(labels, mm.model(ids, training=True)))
    assert loss.dtype == tf.float32
    grads = dict(zip([v.name for v in variables], tape.gradient(loss, variables)))
    assert all(g.dtype == tf.float32 for g in grads.values())
    emb = grads[mm._embedding.name]
    assert isinstance(emb, tf.IndexedSlices) and emb.values.dtype == tf.float32
    masked = mm._masked_gradient(mm._embedding, emb, mm._mask_vars["embedding/embeddings"])
    dense = tf.math.unsorted_segment_sum(masked.values, masked.indices, mm._embedding.shape[0]).numpy()
    assert np.all(dense[PAD_ID] == 0)  # the padding row's gradient is zeroed in float32


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_bfloat16_training_keeps_pruned_weights_exactly_zero_and_learns(kind):
    """The CNN, and the BiLSTM with FastLSTM (as the lottery trains it), in mixed bfloat16."""
    mm = MaskedModel(build_model(TINY[kind], 300, 2, seed=0, fast_lstm=True, precision="bfloat16"), 2)
    masks = mm.masks()
    for _ in range(2):
        masks = prune_local(masks, mm.prunable_values(), 0.3)
    mm.set_masks(masks)
    before = mm.prunable_values()
    batches = synthetic_batches()
    cfg = TrainConfig(epochs=8 if kind == "cnn" else 4, patience=0, learning_rate=0.01, precision="bfloat16")
    result = train(mm, batches, batches, cfg, seed=1, progress=False)
    after = mm.prunable_values()
    for name, mask in masks.items():
        assert after[name].dtype == np.float32
        assert np.all(after[name][~mask] == 0.0), name
        assert np.array_equal(mm.masks()[name], mask), name
    assert np.all(after["embedding/embeddings"][PAD_ID] == 0)
    assert any(not np.array_equal(before[n][masks[n]], after[n][masks[n]]) for n in masks)  # it trained
    losses = [h["train_loss"] for h in result.history]
    assert all(np.isfinite(losses)) and all(np.isfinite(h["valid_loss"]) for h in result.history)
    assert losses[-1] < losses[0], losses
    assert result.history[-1]["valid_loss"] < result.history[0]["valid_loss"]
    if kind == "cnn":
        assert result.history[-1]["valid_accuracy"] > 0.75  # the class is written in the first token


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_fast_lstm_gradient_in_bfloat16_matches_keras_lstm(scale):
    """bfloat16 keeps 8 significant bits (relative rounding 2^-9): against Keras' LSTM in bfloat16 (the same
    forward ops, gradients summed in another order) the gradients agree to a few bfloat16 roundings, against
    float32 to what bfloat16 itself loses (Keras' own LSTM in bfloat16 is as far from float32)."""
    out = check_bfloat16(scale=scale, log=lambda line: None)  # python -m benchmarks.fast_lstm_check --bfloat16
    vs16, vs32 = out["keras_bfloat16"], out["keras_float32"]
    assert vs16["logits"] <= 1e-2 * scale and vs16["gradient_max_rel"] < 0.04 and vs16["gradient_norm_rel"] < 0.03, out
    assert vs32["logits"] < 0.05 * scale and vs32["gradient_max_rel"] < 0.15 and vs32["gradient_norm_rel"] < 0.1, out


def test_fast_lstm_custom_gradient_returns_each_inputs_dtype():
    from lth_tf.nets.fast_lstm import _recurrence

    rng = np.random.default_rng(0)
    xw = tf.constant(rng.normal(size=(5, 3, 16)), tf.bfloat16)
    recurrent = tf.Variable(rng.normal(size=(4, 16)).astype(np.float32))
    mask = tf.ones([5, 3, 1], tf.bool)
    with tf.GradientTape() as tape:
        tape.watch(xw)
        hs = _recurrence(xw, recurrent, mask)
        loss = tf.reduce_sum(tf.cast(hs, tf.float32))
    d_xw, d_rec = tape.gradient(loss, [xw, recurrent])
    assert hs.dtype == tf.bfloat16 and d_xw.dtype == tf.bfloat16 and d_rec.dtype == tf.float32
