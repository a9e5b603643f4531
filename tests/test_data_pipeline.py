"""make_dataset: shapes, padding, completeness, determinism, bucketing."""
import numpy as np
import pytest

from lth_tf.data import EncodedSplit, make_dataset, plan_batches
from lth_tf.data.pipeline import pad_batch, padding_fraction
from lth_tf.errors import UserError


def synthetic_split(n=300, seed=0, max_len=120):
    """Text i is [i+2, 1000+i, ...] (length 1..max_len): its first token names it."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.concatenate([np.r_[i + 2, np.full(l - 1, 1000 + i)] for i, l in enumerate(lengths)]).astype(np.int32)
    return EncodedSplit(ids, offsets, (np.arange(n) % 3).astype(np.int32))


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_shapes_dtypes_and_padding():
    split = synthetic_split(100)
    out = batches(make_dataset(split, 16, shuffle_seed=None, bucket=False))
    assert [len(y) for _, y in out] == [16] * 6 + [4]
    lengths = split.lengths()
    for b, (x, y) in enumerate(out):
        assert x.dtype == np.int32 and y.dtype == np.int32
        idx = np.arange(b * 16, min(100, b * 16 + 16))
        assert x.shape == (len(idx), lengths[idx].max())  # padded to the longest text of the batch
        for row, i in zip(x, idx):
            text = split.token_ids[split.offsets[i]:split.offsets[i + 1]]
            assert np.array_equal(row[:len(text)], text) and not row[len(text):].any()
        assert np.array_equal(y, split.labels[idx])


def test_evaluation_order_is_fixed():
    split = synthetic_split(100)
    plain = batches(make_dataset(split, 10, bucket=False))
    assert np.array_equal(np.concatenate([x[:, 0] for x, _ in plain]) - 2, np.arange(100))
    a, b = batches(make_dataset(split, 10)), batches(make_dataset(split, 10))
    assert all(np.array_equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    # bucketed evaluation: sorted by length, every example once
    firsts = np.concatenate([x[:, 0] for x, _ in a]) - 2
    assert sorted(firsts) == list(range(100))
    assert list(split.lengths()[firsts]) == sorted(split.lengths())


@pytest.mark.parametrize("bucket", [True, False])
def test_every_example_once_per_epoch(bucket):
    split = synthetic_split(1000)
    out = batches(make_dataset(split, 32, shuffle_seed=5, bucket=bucket))
    firsts = np.concatenate([x[:, 0] for x, _ in out]) - 2
    assert sorted(firsts) == list(range(1000))
    labels = np.concatenate([y for _, y in out])
    assert np.array_equal(labels, split.labels[firsts])
    assert firsts.tolist() != list(range(1000))  # shuffled


def test_order_depends_only_on_the_seed():
    split = synthetic_split(500)
    ds = make_dataset(split, 32, shuffle_seed=7)
    first, second = batches(ds), batches(ds)  # iterating again repeats the epoch
    third = batches(make_dataset(split, 32, shuffle_seed=7))
    other = batches(make_dataset(split, 32, shuffle_seed=8))
    key = lambda out: [x[:, 0].tolist() for x, _ in out]  # noqa: E731
    assert key(first) == key(second) == key(third)
    assert key(first) != key(other)


def test_bucketing_reduces_padding():
    split = synthetic_split(3200, max_len=400)
    lengths = split.lengths()
    bucketed = padding_fraction(lengths, plan_batches(lengths, 64, 1, bucket=True))
    plain = padding_fraction(lengths, plan_batches(lengths, 64, 1, bucket=False))
    assert plain > 0.4 and bucketed < 0.1
    ds = make_dataset(split, 64, shuffle_seed=1, bucket=True)
    cells = sum(x.size for x, _ in batches(ds))
    assert cells < 1.15 * lengths.sum()


def test_max_len_truncates():
    split = synthetic_split(50)
    out = batches(make_dataset(split, 8, shuffle_seed=0, max_len=10))
    assert max(x.shape[1] for x, _ in out) == 10
    for x, _ in out:
        for row in x:
            i = row[0] - 2
            text = split.token_ids[split.offsets[i]:split.offsets[i + 1]][:10]
            assert np.array_equal(row[:len(text)], text)


def test_drop_remainder_and_cardinality():
    from lth_tf.keras import tf
    split = synthetic_split(100)
    ds = make_dataset(split, 32, shuffle_seed=0, drop_remainder=True)
    assert int(tf.data.experimental.cardinality(ds)) == 3
    assert [len(y) for _, y in batches(ds)] == [32, 32, 32]
    assert int(tf.data.experimental.cardinality(make_dataset(split, 32))) == 4
    opts = ds.options()
    assert opts.autotune.enabled is False and opts.deterministic is True


def test_empty_split_and_bad_arguments():
    empty = EncodedSplit(np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, np.int32))
    assert batches(make_dataset(empty, 8)) == []
    with pytest.raises(UserError, match="batch_size"):
        make_dataset(synthetic_split(5), 0)


def test_pad_batch():
    split = synthetic_split(5)
    x = pad_batch(split.token_ids, split.offsets, split.lengths(), np.array([3, 1]))
    assert x.shape == (2, split.lengths()[[3, 1]].max()) and x[0, 0] == 5 and x[1, 0] == 3


def test_keras_fit_runs_on_it():
    from lth_tf.keras import keras
    split = synthetic_split(64, max_len=20)
    model = keras.Sequential([keras.layers.Embedding(2000, 4), keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(make_dataset(split, 16, shuffle_seed=0), epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
