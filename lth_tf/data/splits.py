"""The splits: `EncodedSplit` (one split as token ids, ragged by offsets) and how the splits are drawn
(`stratified_split`, `TEST_FRACTION`). Both the cache (lth_tf/data/cache.py) and prepare_data use them.
A change to how the splits are drawn changes what a cached corpus holds: bump `cache.CACHE_VERSION` with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEST_FRACTION = 0.2  # pooled IMDb (40,000/10,000) and the samples (80/20)


@dataclass
class EncodedSplit:
    """One split, tokenised to ids: text i is token_ids[offsets[i]:offsets[i+1]]."""
    token_ids: np.ndarray  # int32
    offsets: np.ndarray  # int64, len n+1, offsets[0] == 0
    labels: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, indices) -> "EncodedSplit":
        """The examples at `indices` (ints or a boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        ids, offsets = gather_ragged(self.token_ids, self.offsets, idx)
        return EncodedSplit(ids, offsets, self.labels[idx])

    def texts(self, vocab: list[str]) -> list[str]:
        """The token strings of every text joined by spaces (for inspection and tests)."""
        words = np.asarray(vocab, dtype=object)
        return [" ".join(words[self.token_ids[a:b]]) for a, b in zip(self.offsets[:-1], self.offsets[1:])]


def gather_ragged(values: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows idx of a ragged array given as (values, offsets), without a Python loop."""
    lens = (offsets[idx + 1] - offsets[idx]) if len(idx) else np.zeros(0, np.int64)
    new_offsets = np.zeros(len(idx) + 1, np.int64)
    np.cumsum(lens, out=new_offsets[1:])
    total = int(new_offsets[-1])
    src = np.repeat(offsets[idx] - new_offsets[:-1], lens) + np.arange(total, dtype=np.int64)
    return values[src], new_offsets


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator,
                     num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): round(n * fraction) examples held out, each class contributing its share (largest
    remainders, ties to the lower class), chosen at random within the class; both sides shuffled."""
    n = len(labels)
    n_held = int(np.floor(n * fraction + 0.5))
    counts = np.bincount(labels, minlength=num_classes)
    quota = counts * fraction
    take = np.floor(quota).astype(np.int64)
    order = sorted(range(num_classes), key=lambda c: (-(quota[c] - take[c]), c))
    for c in order[: n_held - int(take.sum())]:
        take[c] += 1
    held, kept = [], []
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        held.append(members[: take[c]])
        kept.append(members[take[c]:])
    return rng.permutation(np.concatenate(kept)), rng.permutation(np.concatenate(held))
