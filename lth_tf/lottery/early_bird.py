"""Early-bird tickets (You et al. 2020, "Drawing early-bird tickets"): does the mask a level would hand on
settle long before the level ends?

During a level, after every epoch (and every --early_bird_steps steps if above 0), `EarlyBird` draws the mask
the next pruning round would draw from the current weights (lth_tf.sparsity.pruning.prune with the run's
strategy and options, applied to the level's own mask) and records its normalised Hamming distance to the
mask drawn at the previous check (the first check: to the one drawn from the level's start weights): the
fraction of the prunable positions whose bit differs. Prunable: alive in the level's mask, the only
positions a round can prune (the others are 0 in both masks); so a round of fraction p gives distances up to
2p at every level, and one threshold means the same thing at 100% and at 1% of the weights left (over all
positions, a level-20 IMP mask could never move more than 2p x 1.2% and would always look converged). The
mask has converged ("fired") at the check where the distance has been below --early_bird_threshold for
--early_bird_patience checks in a row.

- `--early_bird` records the checks in every task's metrics.json ("early_bird": `summary`). A check only
  reads the weights, so the trained numbers are those of a run without it.
- The `early_bird` branch (lth_tf.lottery.branches) is a trajectory whose levels END when the mask fired:
  its next level's mask is drawn from the weights at that point, so reaching a sparsity costs fewer steps;
  `early_bird_ticket` trains that mask fully from the rewind point, to compare with the ticket at the same
  sparsity (lth_tf.instruments.early_bird).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from lth_tf.config import RunConfig
from lth_tf.lottery.branches import BRANCHES
from lth_tf.sparsity import pruning
from lth_tf.sparsity.masks import Masks

NAME = "early_bird"  # the key of the checks in a task's metrics.json


def hamming(a: Masks, b: Masks, prunable: Masks) -> float:
    """Normalised Hamming distance of two masks of one model: the fraction of the `prunable` positions (True)
    where they differ (0 when there are none)."""
    differ = sum(int(np.count_nonzero((np.asarray(a[n], bool) != np.asarray(b[n], bool)) & prunable[n])) for n in a)
    return differ / max(1, sum(int(np.count_nonzero(prunable[n])) for n in a))


def draw(masks: Masks, weights: dict, prune_cfg) -> Masks:
    """The mask the next pruning round would draw from `weights`. A round that would empty a tensor is allowed
    here: a check must never stop training (the real round, at the next level, still refuses)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pruning.prune_round(masks, weights, prune_cfg, allow_empty_tensors=True)


def below_in_a_row(checks: list[dict], threshold: float) -> int:
    """How many of the last checks in a row had a distance below `threshold`."""
    n = 0
    for record in reversed(checks):
        if record["distance"] >= threshold:
            break
        n += 1
    return n


class EarlyBird:
    """The watch of one level (lth_tf.training.Watch). `stops`: end the level when the mask fired."""

    def __init__(self, prune_cfg, every_steps: int, threshold: float, patience: int, stops: bool):
        self.prune_cfg, self.every_steps = prune_cfg, every_steps
        self.threshold, self.patience, self.stops = threshold, patience, stops
        self.masks = self.previous = None
        self.below, self.fired = 0, False

    def start(self, mm, checks: list[dict]) -> None:
        """From the weights training starts (or resumes) at: after a resume they are those of the last check."""
        self.masks = mm.masks()
        self.previous = draw(self.masks, mm.prunable_values(), self.prune_cfg)
        self.below = below_in_a_row(checks, self.threshold)
        self.fired = any(c["fired"] for c in checks)

    def check(self, mm, step: int, epoch: int) -> tuple[dict, bool]:
        started = time.perf_counter()
        current = draw(self.masks, mm.prunable_values(), self.prune_cfg)
        distance = hamming(self.previous, current, self.masks)
        self.previous = current
        self.below = self.below + 1 if distance < self.threshold else 0
        fired = not self.fired and self.below >= self.patience
        self.fired = self.fired or fired
        record = {"step": step, "epoch": epoch, "distance": distance, "fired": fired,
                  "seconds": time.perf_counter() - started}
        return record, fired and self.stops

    def summary(self, checks: list[dict], stopped: bool) -> dict:
        """What a task's metrics.json keeps under "early_bird"."""
        fired = next((c for c in checks if c["fired"]), None)
        return {"threshold": self.threshold, "patience": self.patience, "every_steps": self.every_steps,
                "stops": self.stops, "stopped": stopped, "converged_step": fired["step"] if fired else None,
                "converged_epoch": fired["epoch"] if fired else None,
                "check_seconds": sum(c["seconds"] for c in checks), "checks": checks}


def watch(cfg: RunConfig, branch: str) -> EarlyBird | None:
    """The watch of a task of `branch`: the early_bird branch's always (it stops), every task's with
    --early_bird (it records), else none."""
    stops = BRANCHES[branch].stop == "early_bird"
    e = cfg.experiment
    if not (stops or e.early_bird):
        return None
    return EarlyBird(cfg.prune, e.early_bird_steps, e.early_bird_threshold, e.early_bird_patience, stops)
