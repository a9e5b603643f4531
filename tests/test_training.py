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


@pytest.mark.parametrize("kind,classes", [("cnn", 3), ("lstm", 2)])
def test_evaluate_gives_todays_numbers_bit_for_bit(kind, classes):
    """evaluate() accumulates inside the compiled step and reads once; it must give exactly what adding each
    batch's float32 sums to Python floats gave (a remainder batch of 8 included)."""
    mm, _ = _pruned_model(kind, classes=classes)
    batches = synthetic_batches(n=200, num_classes=classes, batch_size=64)
    loss_sum, correct, n = 0.0, 0.0, 0
    for ids, labels in batches():  # the evaluation loop as it was
        batch_loss, batch_correct = mm._eval_step(ids, labels)
        loss_sum += float(batch_loss)
        correct += float(batch_correct)
        n += int(labels.shape[0])
    ev = mm.evaluate(batches())
    assert ev == {"loss": loss_sum / n, "accuracy": correct / n, "n": n}
    assert mm.evaluate(batches()) == ev  # the totals start from zero every time
    with pytest.raises(ValueError):
        mm.evaluate([])


def _split(n=160, length=40, seed=0):
    from lth_tf.data import EncodedSplit
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, length + 1, n)
    labels = rng.integers(0, 2, n).astype(np.int32)
    texts = [np.r_[2 + labels[i], rng.integers(2, 300, l - 1)] for i, l in enumerate(lengths)]
    return EncodedSplit(np.concatenate(texts).astype(np.int32), np.r_[0, np.cumsum(lengths)].astype(np.int64), labels)


def test_length_buckets_pad_batches_to_few_lengths_and_keep_the_batches():
    from lth_tf.data import make_dataset
    from lth_tf.data.pipeline import XLA_LENGTH_BUCKETS, bucket_length

    assert [bucket_length(n, XLA_LENGTH_BUCKETS) for n in (1, 8, 9, 13, 17, 100, 4096, 4097)] == \
        [8, 8, 12, 16, 24, 128, 4096, 8192]
    split = _split()
    plain = [(x.numpy(), y.numpy()) for x, y in make_dataset(split, 16, shuffle_seed=3)]
    padded = [(x.numpy(), y.numpy()) for x, y in make_dataset(split, 16, shuffle_seed=3,
                                                              length_buckets=XLA_LENGTH_BUCKETS)]
    assert len(plain) == len(padded)
    for (x, y), (px, py) in zip(plain, padded):
        assert px.shape[1] == bucket_length(x.shape[1], XLA_LENGTH_BUCKETS) >= x.shape[1]
        assert np.array_equal(px[:, :x.shape[1]], x) and not px[:, x.shape[1]:].any() and np.array_equal(py, y)
    shapes = {x.shape[1] for x, _ in padded}
    assert shapes <= set(XLA_LENGTH_BUCKETS) and len(shapes) < len({x.shape[1] for x, _ in plain})
    from lth_tf.errors import UserError
    with pytest.raises(UserError):
        make_dataset(split, 16, length_buckets=(64, 32))


def test_xla_training_keeps_pruned_weights_exactly_zero_and_learns():
    from lth_tf.data import make_dataset
    from lth_tf.data.pipeline import XLA_LENGTH_BUCKETS

    mm, masks = _pruned_model("cnn")
    split = _split()
    result = train(mm, lambda epoch: make_dataset(split, 32, shuffle_seed=epoch, length_buckets=XLA_LENGTH_BUCKETS),
                   lambda: make_dataset(split, 32), TrainConfig(epochs=4, patience=0, learning_rate=0.01, xla=True),
                   seed=1, progress=False)
    after = mm.prunable_values()
    for name, mask in masks.items():
        assert np.all(after[name][~mask] == 0.0), name
        assert np.array_equal(mm.masks()[name], mask)
    losses = [h["train_loss"] for h in result.history]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_xla_is_for_the_cnn_only():
    from lth_tf.config import RunConfig

    lstm = RunConfig(model=ModelConfig(model="lstm"), train=TrainConfig(xla=True))
    (note,) = lstm.validate()
    assert note.startswith("--xla=True applies only with --model=cnn") and "\n" not in note
    assert lstm.identity() == RunConfig(model=ModelConfig(model="lstm")).identity()  # ignored
    assert RunConfig(train=TrainConfig(xla=True)).validate() == []
    assert RunConfig(train=TrainConfig(xla=True)).identity() != RunConfig().identity()
    for other in (TrainConfig(precision="bfloat16"), TrainConfig(eval_batch_size=256)):
        assert RunConfig(train=other).identity() != RunConfig().identity()
    assert TrainConfig().resolved_eval_batch_size() == 64 and TrainConfig(eval_batch_size=256).resolved_eval_batch_size() == 256


def test_a_resumed_level_reports_what_its_earlier_attempts_spent(tmp_path):
    from lth_tf.rundir import TaskCheckpoints

    mm, _ = _pruned_model("cnn")
    batches = synthetic_batches()
    cfg = TrainConfig(epochs=3, patience=0, learning_rate=0.01)

    def dies_in_epoch_3(epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return batches(epoch)

    checkpoints = TaskCheckpoints(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        train(mm, dies_in_epoch_3, batches, cfg, seed=0, progress=False, checkpoints=checkpoints)
    spent = checkpoints.load().progress.seconds
    resumed = train(mm, batches, batches, cfg, seed=0, progress=False, checkpoints=checkpoints)
    # the attempt that died trained epochs 1-2: the level's seconds (what a task's metrics report) include them
    assert resumed.resumed_seconds == spent >= sum(h["seconds"] for h in resumed.history[:2]) > 0
    assert resumed.seconds >= spent + resumed.history[2]["seconds"]
