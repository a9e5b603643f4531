"""Interval estimates for the report, at 95% (each function takes another `confidence`, e.g. for simultaneous
intervals over several levels: lth_tf.report.verdicts).

- Over replicates (n >= 2): the mean and its Student-t interval, mean ± t(0.975, n-1) · s / sqrt(n).
- One replicate (n = 1): no seed-to-seed spread can be estimated. What is still known is the evaluation
  set's own sampling error: an accuracy k/N on N examples gets the Wilson score interval (no continuity
  correction; scipy's `binomtest(k, N).proportion_ci(method="wilson")`). It leaves out the seed-to-seed
  spread, which is often larger.
- Differences a - b paired by replicate: the t-interval of the per-replicate differences (n >= 2); with
  one replicate, Newcombe's hybrid score interval from the two Wilson intervals (method 10 of Newcombe
  1998). That interval treats the two accuracies as independent samples; both were measured on the SAME
  examples, whose errors are positively correlated, so it is wider than the truth.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping

import numpy as np
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95
METHODS = {"t": "95% t-interval", "wilson": "95% Wilson interval", "newcombe": "95% Newcombe interval", "": ""}


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval (low/high None: no interval). `method`: 't' (over n replicates),
    'wilson' (n = 1: the evaluation set's binomial error on `examples` items), 'newcombe' (n = 1, a difference
    of two accuracies on `examples` items each), '' (no interval: n = 0, or n = 1 and no set size known)."""
    mean: float
    low: float | None
    high: float | None
    n: int
    method: str = ""
    examples: int | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def half_width(self) -> float | None:
        return (self.high - self.low) / 2 if self.has_interval else None

    def describe(self) -> str:
        """What the interval is, in words: '95% t-interval, n=3' or '95% Wilson interval, n=1, N=10000'."""
        if not self.has_interval:
            return f"no interval, n={self.n}"
        return METHODS[self.method] + f", n={self.n}" + (f", N={self.examples}" if self.method != "t" else "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1))


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Estimate:
    """Mean and Student-t interval of a sample (n >= 2); n = 1 has a mean but no interval."""
    x = np.asarray(list(values), float)
    if x.size == 0:
        return Estimate(math.nan, None, None, 0)
    mean = float(x.mean())
    if x.size == 1:
        return Estimate(mean, None, None, 1)
    half = _t_quantile(x.size, confidence) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Estimate(mean, mean - half, mean + half, int(x.size), "t")


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (no continuity correction)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = float(_scipy_stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _wilson_of(p: float, examples: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    return wilson(int(round(p * examples)), examples, confidence)


def accuracy(values: Iterable[float], examples: int | None = None) -> Estimate:
    """An accuracy over replicates: the t-interval (n >= 2), or for one replicate the Wilson interval of its
    evaluation set of `examples` items (no interval if that size is unknown)."""
    est = t_interval(values)
    if est.n == 1 and examples:
        low, high = _wilson_of(est.mean, examples)
        return Estimate(est.mean, low, high, 1, "wilson", examples)
    return est


def newcombe(p1: float, p2: float, n1: int, n2: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 for two independent proportions (Wilson per proportion)."""
    l1, u1 = _wilson_of(p1, n1, confidence)
    l2, u2 = _wilson_of(p2, n2, confidence)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def paired_difference(a: Mapping, b: Mapping, examples: int | None = None,
                      confidence: float = CONFIDENCE) -> Estimate:
    """a - b over the replicates (keys) both have: the t-interval of the per-replicate differences (n >= 2);
    one common replicate: Newcombe's interval on `examples` items each (none if that size is unknown)."""
    keys = sorted(set(a) & set(b))
    est = t_interval([a[k] - b[k] for k in keys], confidence)
    if est.n == 1 and examples:
        low, high = newcombe(a[keys[0]], b[keys[0]], examples, examples, confidence)
        return Estimate(est.mean, low, high, 1, "newcombe", examples)
    return est


# --- formatting (accuracies are fractions; the report writes percent) ------------------------------------
def pct(est: Estimate, n: bool = False) -> str:
    """'87.12 ± 0.45' (t: symmetric) or '87.12 [86.45, 87.76]' (Wilson); n=True appends '(n=3)'."""
    return _format(est, "", n)


def points(est: Estimate, n: bool = False) -> str:
    """A difference in percentage points: '+0.31 ± 0.50' or '+0.31 [-0.90, +1.52]'."""
    return _format(est, "+", n)


def _format(est: Estimate, sign: str, n: bool) -> str:
    if est.n == 0:
        return "-"
    text = f"{100 * est.mean:{sign}.2f}"
    if est.has_interval:
        text += (f" ± {100 * est.half_width:.2f}" if est.method == "t"
                 else f" [{100 * est.low:{sign}.2f}, {100 * est.high:{sign}.2f}]")
    return text + (f" (n={est.n})" if n else "")
