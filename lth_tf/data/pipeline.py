"""make_dataset: batches of zero-padded token ids as a tf.data.Dataset.

The batch plan (which examples, in which order) is made with numpy from the seed alone, before TensorFlow
sees anything; a generator then pads one batch at a time with vectorised numpy. So the order depends only on
the seed given, every iteration of a dataset repeats it, and there is no per-example Python in the hot path.

`length_buckets` pads every batch further, to the smallest of a few fixed lengths that holds its longest
text: a step compiled with XLA (`--xla`) compiles once per input shape, so it then compiles a few times
instead of once per batch length. More padding changes the CNN's outputs for a text (its max-pool sees
the windows over the padding), so it is only used where it is part of a run's identity (`--xla`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lth_tf.data.splits import EncodedSplit
from lth_tf.errors import UserError

CHUNK_BATCHES = 50  # bucketing sorts by length within windows of this many batches
# Padded lengths for XLA: powers of two and 1.5x powers of two (two per octave), so a batch is padded by at most
# half its longest text (16 -> 24 at worst) and a dataset of texts up to 4,096 tokens gives at most 17 shapes.
XLA_LENGTH_BUCKETS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


def bucket_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket >= length; beyond the largest bucket, the next multiple of it (still few shapes)."""
    for b in buckets:
        if b >= length:
            return int(b)
    top = int(buckets[-1])
    return -(-length // top) * top


def plan_batches(lengths: np.ndarray, batch_size: int, shuffle_seed: int | None = None, bucket: bool = True,
                 drop_remainder: bool = False) -> list[np.ndarray]:
    """Index arrays, one per batch.

    - shuffle_seed None (evaluation): the split's order; with `bucket`, the whole split sorted by length
      (stable), which pads least. Fixed for a given split.
    - shuffle_seed given (training): a permutation drawn from the seed; with `bucket`, windows of
      CHUNK_BATCHES batches of it are sorted by length (stable), cut into batches, and the batches shuffled.
    - drop_remainder drops batches smaller than batch_size (one at most, the permutation's tail).
    """
    n = len(lengths)
    if shuffle_seed is None:
        order = np.argsort(lengths, kind="stable") if bucket else np.arange(n)
        batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    else:
        rng = np.random.default_rng(np.random.SeedSequence([int(shuffle_seed) & 0xFFFFFFFFFFFFFFFF, 7]))
        order = rng.permutation(n)
        if bucket:
            window = batch_size * CHUNK_BATCHES
            batches = []
            for start in range(0, n, window):
                chunk = order[start:start + window]
                chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
                batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
            batches = [batches[i] for i in rng.permutation(len(batches))]
        else:
            batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_remainder:
        batches = [b for b in batches if len(b) == batch_size]
    return batches


def pad_batch(token_ids: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, idx: np.ndarray,
              length_buckets: Sequence[int] = ()) -> np.ndarray:
    """int32 [len(idx), max length] of the texts idx (their first lengths[i] tokens), zero-padded; with
    `length_buckets`, padded to bucket_length(max length) instead."""
    lens = lengths[idx]
    width = max(1, int(lens.max(initial=0)))
    if length_buckets:
        width = bucket_length(width, length_buckets)
    out = np.zeros((len(idx), width), np.int32)
    total = int(lens.sum())
    rows = np.repeat(np.arange(len(idx)), lens)
    starts = np.cumsum(lens) - lens
    cols = np.arange(total) - np.repeat(starts, lens)
    out[rows, cols] = token_ids[np.repeat(offsets[idx], lens) + cols]
    return out


def padding_fraction(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    """Share of padded cells in these batches (0 = no padding)."""
    cells = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    return 1.0 - float(sum(int(lengths[b].sum()) for b in batches)) / max(1, cells)


def make_dataset(split: EncodedSplit, batch_size: int, shuffle_seed: int | None = None, bucket: bool = True,
                 max_len: int = 0, drop_remainder: bool = False, length_buckets: Sequence[int] = ()):
    """tf.data.Dataset of (ids int32 [B, T] zero-padded to the batch's longest text, labels int32 [B]).

    shuffle_seed None gives a fixed evaluation order; the same seed always gives the same batches. max_len > 0
    keeps the first max_len tokens of each text. length_buckets (e.g. XLA_LENGTH_BUCKETS): T is the smallest
    bucket that holds the batch's longest text (see bucket_length), so few distinct shapes occur; the batches
    (which texts, in which order) are the same. Autotuning is off (it stalled fit() here) and the dataset is
    deterministic; its cardinality (number of batches) is known."""
    from lth_tf.keras import tf

    if batch_size < 1:
        raise UserError(f"--batch_size={batch_size}: must be at least 1")
    if max_len < 0:
        raise UserError(f"--max_len={max_len}: must be 0 (no cap) or positive")
    lengths = split.lengths()
    if max_len:
        lengths = np.minimum(lengths, max_len)
    length_buckets = tuple(int(b) for b in length_buckets)
    if any(b < 1 for b in length_buckets) or list(length_buckets) != sorted(set(length_buckets)):
        raise UserError(f"length_buckets={length_buckets}: give increasing positive lengths")
    batches = plan_batches(lengths, batch_size, shuffle_seed, bucket, drop_remainder)
    token_ids, offsets, labels = split.token_ids, split.offsets, split.labels

    def generate():
        for idx in batches:
            yield pad_batch(token_ids, offsets, lengths, idx, length_buckets), labels[idx]

    ds = tf.data.Dataset.from_generator(
        generate, output_signature=(tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)))
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(batches)))
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    options.experimental_optimization.apply_default_optimizations = False
    try:
        options.experimental_optimization.inject_prefetch = False
    except AttributeError:  # pragma: no cover - older TF
        pass
    return ds.with_options(options)
