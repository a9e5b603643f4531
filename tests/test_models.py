import math

import numpy as np
import pytest

from lth_tf.config import ModelConfig
from lth_tf.errors import UserError
from lth_tf.keras import keras, tf
from lth_tf.nets.models import build_model, xavier_std
from lth_tf.sparsity.registry import RegistryPruningPolicy, all_weights, prunable_weights, Selection


@pytest.mark.parametrize("model,classes,expected", [
    ("cnn", 2, 5_120_801),   # the study's IMDb CNN, exactly
    ("cnn", 4, 5_121_704),   # the study's AG News CNN, exactly
    # PyTorch's LSTM has two bias vectors per gate set (4,810,857); Keras has one: 4 x 1,024 fewer.
    ("lstm", 2, 4_810_857 - 4 * 1024),
])
def test_parameter_counts_match_the_study(model, classes, expected):
    vocab = 50_002 if model == "cnn" else 25_002
    m = build_model(ModelConfig(model=model), vocab, classes, seed=0)
    assert m.count_params() == expected
    assert m.output_shape == (None, 1 if classes == 2 else classes)


def test_cnn_shapes_and_short_inputs():
    m = build_model(ModelConfig(model="cnn", embedding_dim=8, filters=4), 50, 3, seed=0)
    out = m(tf.constant([[5, 6]], tf.int32))  # shorter than the widest filter: padded, not an error
    assert out.shape == (1, 3)


def test_study_init_statistics():
    cfg = ModelConfig(model="cnn")
    m = build_model(cfg, 50_002, 2, seed=3)
    w = {k: v.numpy() for k, v in all_weights(m).items()}
    for width in (3, 4, 5):
        expected = math.sqrt(2.0 / (width * 100 * (100 + 1)))  # PyTorch fans of Conv2d(1, 100, (w, 100))
        assert abs(w[f"conv{width}/kernel"].std() / expected - 1) < 0.03
        assert np.all(w[f"conv{width}/bias"] == 0)
    assert abs(w["conv3/kernel"].std() - 0.00812) < 0.0003
    emb = w["embedding/embeddings"]
    assert np.all(emb[:2] == 0)  # <pad> and <unk>
    assert abs(emb[2:].std() - 1.0) < 0.01 and abs(emb[2:].mean()) < 0.01
    assert abs(w["output/kernel"].std() / xavier_std(300, 1) - 1) < 0.15


def test_lstm_init_orthogonal_and_zero_biases():
    m = build_model(ModelConfig(model="lstm", hidden=32, embedding_dim=16), 100, 2, seed=1)
    w = {k: v.numpy() for k, v in all_weights(m).items()}
    for layer in ("bilstm1", "bilstm2"):
        for direction in ("forward", "backward"):
            r = w[f"{layer}/{direction}/recurrent_kernel"]  # [H, 4H]: orthonormal rows
            np.testing.assert_allclose(r @ r.T, np.eye(32), atol=1e-5)
            assert np.all(w[f"{layer}/{direction}/bias"] == 0)  # forget gate included
    k = w["bilstm1/forward/kernel"]
    assert abs(k.std() / xavier_std(16, 4 * 32) - 1) < 0.05
    # the two directions start from different weights
    assert not np.allclose(w["bilstm1/forward/kernel"], w["bilstm1/backward/kernel"])


def test_same_seed_same_weights_other_seed_other_weights():
    cfg = ModelConfig(model="lstm", hidden=8, embedding_dim=8)
    a, b, c = (all_weights(build_model(cfg, 60, 2, seed=s)) for s in (5, 5, 6))
    for name in a:
        np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())
    assert any(not np.array_equal(a[n].numpy(), c[n].numpy()) for n in a if "bias" not in n)


def test_registry_names_and_selection():
    m = build_model(ModelConfig(model="cnn", embedding_dim=8, filters=4), 50, 2, seed=0)
    names = list(prunable_weights(m))
    assert names[0] == "embedding/embeddings" and "conv3/bias" in names and "output/kernel" in names
    only = prunable_weights(m, Selection(bias=False, embedding=False, output=False))
    assert set(only) == {"conv3/kernel", "conv4/kernel", "conv5/kernel"}
    lstm = build_model(ModelConfig(model="lstm", hidden=4, embedding_dim=4, lstm_layers=1), 20, 2, seed=0)
    assert "bilstm1/backward/recurrent_kernel" in prunable_weights(lstm)


def test_unknown_weighted_layer_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.BatchNormalization()(inputs)))
    with pytest.raises(UserError, match="BatchNormalization"):
        prunable_weights(model)
    with pytest.raises(UserError, match="not in the pruning registry"):
        RegistryPruningPolicy().ensure_model_supports_pruning(model)


def test_policy_admits_registry_layers_for_tfmot():
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import PruneLowMagnitude

    m = build_model(ModelConfig(model="cnn", embedding_dim=8, filters=4), 50, 2, seed=0)
    policy = RegistryPruningPolicy()
    assert policy.allow_pruning(m.get_layer("conv3")) and not policy.allow_pruning(m.get_layer("dropout"))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(m, pruning_policy=policy)
    wrapped = [l.layer.name for l in pruned.layers if isinstance(l, PruneLowMagnitude)]
    assert {"conv3", "conv4", "conv5", "output", "embedding"} <= set(wrapped)


def test_cnn_output_depends_on_padding_up_to_the_widest_filter():
    """A fact evaluation batching must respect: the CNN convolves over the padding too (as the study's did), so a
    text's logits change when its batch is padded further, until the padding is as long as the widest filter
    minus one; beyond that only windows of padding alone are added, all equal, and nothing changes. So other
    evaluation batches (--eval_batch_size) change the numbers: the default keeps today's batches."""
    m = build_model(ModelConfig(model="cnn", embedding_dim=16, filters=8), 300, 2, seed=0)
    rng = np.random.default_rng(0)
    m.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32) if w.ndim == 1 else w for w in m.get_weights()])
    text = rng.integers(2, 300, 12).astype(np.int32)
    logits = [m(np.pad(text, (0, extra))[None], training=False).numpy()[0, 0] for extra in range(10)]
    assert len(set(logits[:5])) > 1  # padding of 1 to 4 tokens changes the logit
    assert len(set(logits[4:])) == 1  # from 4 tokens of padding (widest filter 5, minus 1) on, nothing does


def test_lstm_output_does_not_depend_on_padding():
    m = build_model(ModelConfig(model="lstm", embedding_dim=8, hidden=8), 300, 2, seed=0, fast_lstm=True)
    text = np.random.default_rng(1).integers(2, 300, 9).astype(np.int32)
    logits = [m(np.pad(text, (0, extra))[None], training=False).numpy()[0, 0] for extra in (0, 3, 20)]
    np.testing.assert_allclose(logits, logits[0], rtol=1e-6, atol=1e-7)
