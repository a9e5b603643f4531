import numpy as np
import pytest

from helpers import synthetic_batches
from lth_tf.config import ModelConfig, TrainConfig
from lth_tf.nets.models import build_model
from lth_tf.sparsity.pruning import prune_local
from lth_tf.training import MaskedModel, train

TINY = {"cnn": ModelConfig(model="cnn", embedding_dim=16, filters=8),
        "lstm": ModelConfig(model="lstm", embedding_dim=8, hidden=8)}


def _pruned_model(kind, seed=0, rounds=2, classes=2):
    mm = MaskedModel(build_model(TINY[kind], 300, classes, seed=seed), classes)
    masks = mm.masks()
    for _ in range(rounds):
        masks = prune_local(masks, mm.prunable_values(), 0.3)
    mm.set_masks(masks)
    return mm, masks


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_pruned_weights_stay_exactly_zero_under_adam(kind):
    mm, masks = _pruned_model(kind)
    before = mm.prunable_values()
    batches = synthetic_batches()
    train(mm, batches, batches, TrainConfig(epochs=2, patience=0, learning_rate=0.01), seed=1, progress=False)
    after = mm.prunable_values()
    for name, mask in masks.items():
        assert np.all(after[name][~mask] == 0.0), name  # embedding, recurrent kernels, biases included
        assert np.array_equal(mm.masks()[name], mask)
    moved = [n for n in masks if not np.array_equal(before[n][masks[n]], after[n][masks[n]])]
    assert "embedding/embeddings" in moved and any("bias" in n for n in moved)  # it really trained


def test_training_learns_and_counts_every_sample():
    mm, _ = _pruned_model("cnn", rounds=0, classes=3)
    batches = synthetic_batches(n=200, num_classes=3, batch_size=64)  # last batch of 8: not a mean of means
    result = train(mm, batches, batches, TrainConfig(epochs=6, patience=0, learning_rate=0.01), seed=0,
                   progress=False)
    ev = mm.evaluate(batches())
    assert ev["n"] == 200 and result.history[-1]["valid_accuracy"] == pytest.approx(ev["accuracy"])
    assert ev["accuracy"] > 0.8


def test_snapshot_restore_leaves_masks_intact():
    mm, masks = _pruned_model("cnn")
    theta0 = mm.snapshot()
    batches = synthetic_batches()
    result = train(mm, batches, batches, TrainConfig(epochs=1, patience=0), seed=0, snapshot_steps=[0, 3],
                   progress=False)
    assert sorted(result.snapshots) == [0, 3]
    assert all(np.array_equal(result.snapshots[0][k], theta0[k]) for k in theta0)
    assert not np.array_equal(result.snapshots[3]["conv3/kernel"], theta0["conv3/kernel"])
    dense = {k: np.ones_like(v) for k, v in theta0.items()}  # a snapshot with no zeros at all
    mm.restore(dense)
    for name, mask in masks.items():
        assert np.array_equal(mm.masks()[name], mask)
        assert np.all(mm.prunable[name].numpy()[~mask] == 0) and np.all(mm.prunable[name].numpy()[mask] == 1)


def test_early_stopping_restores_best_epoch_and_is_deterministic():
    # A high learning rate on random labels: validation loss rises after the first epochs.
    noisy = synthetic_batches(n=128, seed=5)
    cfg = TrainConfig(epochs=8, patience=2, learning_rate=0.05)

    def run(epochs_cfg):
        mm, _ = _pruned_model("cnn", seed=2)
        valid = synthetic_batches(n=64, seed=9)
        r = train(mm, noisy, valid, epochs_cfg, seed=4, progress=False)
        return mm, r

    mm, result = run(cfg)
    losses = [h["valid_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.epochs_trained <= result.best_epoch + 2
    # Training again for exactly best_epoch epochs without early stopping gives the same weights:
    # the best epoch was restored, and the same seed gives bit-identical training.
    mm2, _ = run(TrainConfig(epochs=result.best_epoch, patience=0, learning_rate=0.05))
    a, b = mm.snapshot(), mm2.snapshot()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert mm.evaluate(synthetic_batches(n=64, seed=9)())["loss"] == pytest.approx(min(losses), rel=1e-6)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_same_seed_same_numbers_bit_for_bit(kind):
    results = []
    for _ in range(2):
        mm, _ = _pruned_model(kind, seed=7)
        batches = synthetic_batches(seed=3)
        r = train(mm, batches, batches, TrainConfig(epochs=1 if kind == "lstm" else 2, patience=0), seed=11,
                  progress=False)
        results.append((mm.snapshot(), r.history))
    (a, ha), (b, hb) = results
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [h["valid_loss"] for h in ha] == [h["valid_loss"] for h in hb]


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_gradient_masking_equals_the_remasking_oracle_bit_for_bit(kind):
    """Production masks gradients; the first design re-masked weights after every Adam step. Same weights,
    masks, batches and dropout seed must give identical weights, embedding and its padding row included
    (the BiLSTM with FastLSTM, as the lottery trains it)."""
    from oracles import RemaskingModel
    from lth_tf.nets.models import PAD_ID

    trained = []
    for cls in (MaskedModel, RemaskingModel):
        mm = cls(build_model(TINY[kind], 300, 2, seed=3, fast_lstm=True), 2)
        masks = mm.masks()
        for _ in range(2):
            masks = prune_local(masks, mm.prunable_values(), 0.4)
        mm.set_masks(masks)
        batches = synthetic_batches(seed=5)
        train(mm, batches, batches, TrainConfig(epochs=2, patience=0, learning_rate=0.01), seed=7, progress=False)
        trained.append(mm.snapshot())
    production, oracle = trained
    assert set(production) == set(oracle)
    for name in production:
        assert np.array_equal(production[name], oracle[name]), name
    assert np.all(production["embedding/embeddings"][PAD_ID] == 0)
    assert not np.array_equal(production["embedding/embeddings"], build_model(TINY[kind], 300, 2, seed=3)
                              .get_layer("embedding").embeddings.numpy())  # it trained
