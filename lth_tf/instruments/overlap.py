"""The arithmetic of the mask analysis, on boolean arrays (True = alive), pure numpy.

Overlap of two masks A, B of one tensor of n weights, with k1 = |A| and k2 = |B| survivors: if B's survivors
were k2 positions drawn at random (A fixed, or both random), |A ∩ B| would follow the hypergeometric law:

    E|A ∩ B| = k1 * k2 / n,    Var|A ∩ B| = k1 * k2 * (n - k1) * (n - k2) / (n^2 * (n - 1)).

Over several tensors, masks random within each tensor at that tensor's sparsity ("random masks of the same
per-tensor sparsity") give the sums of these per-tensor means and variances. `Counts` holds the additive
quantities; `describe` turns them into fractions:

- shared = |A ∩ B| / sqrt(k1 * k2): the fraction of survivors the two masks share (exactly that when
  k1 = k2, as local pruning's exact counts make it); random masks: sqrt(k1 * k2) / n (the density when k1 = k2).
- jaccard = |A ∩ B| / |A ∪ B|; jaccard_random: the Jaccard index at the expected intersection (its value for
  a typical pair of random masks; the expectation of the ratio differs from it by O(1/k)).
- above_chance = (|A ∩ B| - E) / (max possible |A ∩ B| - E): 0 for random masks, 1 for the largest overlap
  the sizes allow (sum over tensors of min(k1, k2)), negative below chance.
- z = (|A ∩ B| - E) / sd.

Consecutive levels L -> L+1 (A = level L, B = level L+1): kept = |A ∩ B| / |A| (the fraction of L's survivors
still alive; 1 - the pruned fraction for IMP) and nested = |A ∩ B| / |B| (the fraction of L+1's survivors
that were L's: 1 by construction for a trajectory); random: k2 / n and k1 / n.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

KERAS_GATES = ("i", "f", "c", "o")  # Keras' LSTM: kernel, recurrent_kernel and bias columns in this order


@dataclasses.dataclass
class Counts:
    """Additive counts of a pair of masks over one or more tensors."""
    n: int = 0
    k1: int = 0
    k2: int = 0
    intersection: int = 0
    expected: float = 0.0  # of the intersection, random masks of the same per-tensor sizes
    variance: float = 0.0
    max_intersection: int = 0  # sum over tensors of min(k1, k2)

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(Counts)))


def expected_intersection(n: int, k1: int, k2: int) -> float:
    """E|A ∩ B| for two random subsets of sizes k1, k2 of n positions: k1 * k2 / n."""
    return k1 * k2 / n if n else 0.0


def intersection_variance(n: int, k1: int, k2: int) -> float:
    """Var|A ∩ B| (hypergeometric): k1 k2 (n - k1)(n - k2) / (n^2 (n - 1))."""
    return k1 * k2 * (n - k1) * (n - k2) / (n * n * (n - 1)) if n > 1 else 0.0


def pair_counts(a: np.ndarray, b: np.ndarray) -> Counts:
    """Counts of two masks of one tensor."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"masks of different shapes {a.shape} and {b.shape}")
    n, k1, k2 = a.size, int(np.count_nonzero(a)), int(np.count_nonzero(b))
    return Counts(n, k1, k2, int(np.count_nonzero(a & b)), expected_intersection(n, k1, k2),
                  intersection_variance(n, k1, k2), min(k1, k2))


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def describe(c: Counts) -> dict:
    """The overlap of a pair (see the module's docstring); None where a ratio is undefined (no survivors)."""
    root = math.sqrt(c.k1 * c.k2)
    union = c.k1 + c.k2 - c.intersection
    expected_union = c.k1 + c.k2 - c.expected
    return {"n": c.n, "k1": c.k1, "k2": c.k2, "intersection": c.intersection, "expected": c.expected,
            "sd": math.sqrt(c.variance), "shared": _ratio(c.intersection, root),
            "shared_random": _ratio(c.expected, root),
            "jaccard": _ratio(c.intersection, union), "jaccard_random": _ratio(c.expected, expected_union),
            "above_chance": _ratio(c.intersection - c.expected, c.max_intersection - c.expected),
            "z": _ratio(c.intersection - c.expected, math.sqrt(c.variance)) if c.variance > 0 else None}


def describe_consecutive(c: Counts) -> dict:
    """Level L (k1) -> level L+1 (k2): kept, nested and their values for random masks."""
    return {"n": c.n, "alive_before": c.k1, "alive_after": c.k2, "intersection": c.intersection,
            "kept": _ratio(c.intersection, c.k1), "kept_random": _ratio(c.expected, c.k1),
            "nested": _ratio(c.intersection, c.k2), "nested_random": _ratio(c.expected, c.k2)}


def mean_of(dicts: list[dict]) -> dict:
    """Field-wise mean of describe()'s dicts (None values left out; None if all are)."""
    out = {}
    for key in dicts[0] if dicts else ():
        values = [d[key] for d in dicts if d.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    out["pairs"] = len(dicts)
    return out


# ------------------------------------------------------------------------------------------ survival ---
def row_survival(mask: np.ndarray) -> np.ndarray:
    """Fraction alive in each row of a 2-D mask (an embedding: one row per token)."""
    m = np.asarray(mask, bool)
    return m.reshape(m.shape[0], -1).mean(axis=1)


def log2_bins(values: np.ndarray, first_rank: int = 1) -> list[dict]:
    """`values[i]` belongs to rank first_rank + i; bins of ranks [1, 2), [2, 4), [4, 8), ...: each bin's rank
    range, row count, mean, and 25th/75th percentiles of the values."""
    values = np.asarray(values, float)
    ranks = first_rank + np.arange(values.size)
    out, low = [], 1
    while values.size and low <= ranks[-1]:
        high = 2 * low
        sel = values[(ranks >= low) & (ranks < high)]
        if sel.size:
            q25, q75 = np.percentile(sel, [25, 75])
            out.append({"rank_low": low, "rank_high": int(min(high - 1, ranks[-1])), "rows": int(sel.size),
                        "mean": float(sel.mean()), "q25": float(q25), "q75": float(q75)})
        low = high
    return out


def filter_survival(kernel_mask: np.ndarray) -> np.ndarray:
    """Fraction alive per output filter (the last axis: Keras' Conv1D kernel is (width, in, filters))."""
    m = np.asarray(kernel_mask, bool)
    return m.reshape(-1, m.shape[-1]).mean(axis=0)


def random_group_sd(n: int, k: int, m: int) -> float:
    """Standard deviation of the fraction alive in a fixed group of m of n weights when k survivors are placed
    at random (hypergeometric): sqrt(p (1 - p) (n - m) / ((n - 1) m)), p = k / n."""
    if m <= 0 or n <= 1:
        return 0.0
    p = k / n
    return math.sqrt(p * (1 - p) * (n - m) / ((n - 1) * m))


def gate_survival(mask: np.ndarray, gates: tuple[str, ...] = KERAS_GATES) -> dict[str, float]:
    """Fraction alive per gate: the last axis split into len(gates) equal blocks (Keras' LSTM: i, f, c, o)."""
    m = np.asarray(mask, bool)
    if m.shape[-1] % len(gates):
        raise ValueError(f"last axis {m.shape[-1]} does not split into {len(gates)} gates")
    blocks = np.split(m, len(gates), axis=-1)
    return {g: float(b.mean()) for g, b in zip(gates, blocks)}
