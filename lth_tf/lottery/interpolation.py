"""The straight line between two trained weight sets, and how far a metric rises above its end points on it
(Frankle et al. 2020, "Linear mode connectivity and the lottery ticket hypothesis"). Pure numpy."""
from __future__ import annotations

import numpy as np


def alphas(points: int) -> list[float]:
    """`points` evenly spaced positions on [0, 1], 0 and 1 exactly."""
    if points < 2:
        raise ValueError(f"an interpolation needs at least 2 points, not {points}")
    return [float(x) for x in np.linspace(0.0, 1.0, points)]


def interpolate(a: dict[str, np.ndarray], b: dict[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """(1 - alpha) a + alpha b per weight, in the weights' dtype. Written so that alpha = 0 gives a and alpha = 1
    gives b bit for bit (a + alpha (b - a) would not at alpha = 1)."""
    return {n: np.asarray((1.0 - alpha) * a[n] + alpha * b[n], dtype=a[n].dtype) for n in a}


def barrier(values: list[float]) -> float:
    """The largest value on the path minus the mean of its end points' values (instability, for errors)."""
    return float(max(values) - (values[0] + values[-1]) / 2.0)
