"""A run's numbers, per branch and level, and its two rules: which levels match the dense network, and
the ONE level chosen per run. Both are judged on VALIDATION accuracy; test accuracy is only reported.

Records are dicts with at least replicate, branch, level, sparsity, remaining, valid_accuracy and
test_accuracy (lth_tf.report.records). Level 0 (dense) is stored once per replicate and belongs to every
branch.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from lth_tf import config
from lth_tf.report import stats
from lth_tf.report.stats import Estimate

# "Matches" is a non-inferiority claim, so it needs a margin: without one, "not shown worse" would let any
# interval too wide to show anything (two replicates: t = 12.7) count as a match.
MATCH_MARGIN = 0.01  # accuracy: 1 percentage point
MATCH_RULE = ("a pruned level matches the dense network if the lower end of the 95% interval of its paired "
              "VALIDATION difference (level − dense, per replicate) is above −1 point, i.e. the replicates show it "
              "at most 1 point worse (non-inferiority, 1-point margin); an interval too wide to show that does not "
              "match (n ≥ 2: t-interval; n = 1: Newcombe's interval from the validation set's size)")
CHOICE_RULE = ("one level per run: among the pruned levels finished by the most replicates (all of them, in a "
               "complete run), the one with the highest MEAN VALIDATION accuracy over replicates (ties: the "
               "sparser); every replicate is reported at that level")


def spans(levels: list[int]) -> list[tuple[int, int]]:
    """Sorted levels as runs of consecutive ones, (first, last) each: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for lvl in levels:
        if out and lvl == out[-1][1] + 1:
            out[-1] = (out[-1][0], lvl)
        else:
            out.append((lvl, lvl))
    return out


def _by_level(recs: list[dict], branch: str) -> dict[int, dict[int, dict]]:
    """level -> replicate -> record of one branch (level 0, the dense level, for every branch)."""
    out: dict[int, dict[int, dict]] = defaultdict(dict)
    for r in recs:
        if r["branch"] == branch or r["level"] == 0:
            out[r["level"]][r["replicate"]] = r
    return out


def choose_level(recs: list[dict], replicate: int | None = None, branch: str = "ticket") -> int | None:
    """The run's chosen level of `branch` (CHOICE_RULE): the same for every replicate, so `replicate` (kept
    for callers of the former per-replicate rule) does not change it. None if no pruned level finished."""
    means = {lvl: float(np.mean([r["valid_accuracy"] for r in reps.values()]))
             for lvl, reps in _candidates(_by_level(recs, branch)).items()}
    return max(means, key=lambda lvl: (means[lvl], lvl)) if means else None


def _candidates(by_level: dict[int, dict]) -> dict[int, dict]:
    """The pruned levels finished by the most replicates (a complete run: every pruned level)."""
    pruned = {lvl: reps for lvl, reps in by_level.items() if lvl >= 1}
    most = max((len(reps) for reps in pruned.values()), default=0)
    return {lvl: reps for lvl, reps in pruned.items() if len(reps) == most}


def matches(difference: Estimate) -> bool | None:
    """MATCH_RULE on the paired validation difference (level − dense); None: no interval, not judged."""
    return None if not difference.has_interval else difference.low > -MATCH_MARGIN


@dataclasses.dataclass
class LevelStats:
    """One branch at one level, over its replicates."""
    level: int
    replicates: dict[int, dict]  # replicate -> record
    valid: Estimate
    test: Estimate
    valid_vs_dense: Estimate  # paired by replicate: this level − level 0, validation accuracy
    test_vs_dense: Estimate
    matches: bool | None  # MATCH_RULE

    @property
    def n(self) -> int:
        return len(self.replicates)

    @property
    def sparsity(self) -> float:
        return float(np.mean([r["sparsity"] for r in self.replicates.values()]))

    @property
    def remaining(self) -> float:
        return float(np.mean([r["remaining"] for r in self.replicates.values()]))

    def values(self, key: str) -> dict[int, float]:
        return {rep: r[key] for rep, r in self.replicates.items()}


@dataclasses.dataclass
class Analysis:
    branches: list[str]  # the ticket first
    levels: dict[str, dict[int, LevelStats]]  # branch -> level -> stats (level 0: dense, in every branch)
    chosen: int | None  # CHOICE_RULE, on the ticket
    controls: dict[str, dict[int, dict[str, Estimate]]]  # control -> level -> {"valid", "test"}: ticket − control
    valid_examples: int | None
    test_examples: int | None

    @property
    def dense(self) -> LevelStats | None:
        return self.levels.get("ticket", {}).get(0)

    @property
    def ticket(self) -> dict[int, LevelStats]:
        return self.levels.get("ticket", {})

    @property
    def replicates(self) -> list[int]:
        return sorted({rep for by in self.levels.values() for s in by.values() for rep in s.replicates})

    @property
    def top_level(self) -> int:
        return max(self.ticket) if self.ticket else 0

    @property
    def candidates(self) -> list[int]:
        """The ticket levels that CHOICE_RULE and the sparsest match choose among."""
        return sorted(_candidates({lvl: s.replicates for lvl, s in self.ticket.items()}))

    @property
    def sparsest_match(self) -> int | None:
        """The sparsest ticket level that matches (MATCH_RULE), among the candidates."""
        return max((lvl for lvl in self.candidates if self.ticket[lvl].matches), default=None)

    def to_dict(self) -> dict:
        """The statistics for results.json."""
        def level(s: LevelStats) -> dict:
            return {"level": s.level, "n": s.n, "sparsity": s.sparsity, "remaining": s.remaining,
                    "valid_accuracy": s.valid.to_dict(), "test_accuracy": s.test.to_dict(),
                    "valid_vs_dense": s.valid_vs_dense.to_dict(), "test_vs_dense": s.test_vs_dense.to_dict(),
                    "matches_dense": s.matches}
        return {"rules": {"match": MATCH_RULE, "choice": CHOICE_RULE, "intervals": stats.__doc__.strip()},
                "chosen_level": self.chosen, "sparsest_matching_level": self.sparsest_match,
                "valid_examples": self.valid_examples, "test_examples": self.test_examples,
                "levels": {b: [level(s) for _, s in sorted(by.items())] for b, by in self.levels.items()},
                "ticket_minus_control": {c: [{"level": lvl, "valid": d["valid"].to_dict(), "test": d["test"].to_dict()}
                                             for lvl, d in sorted(by.items())] for c, by in self.controls.items()}}


def analyse(recs: list[dict], valid_examples: int | None = None, test_examples: int | None = None) -> Analysis:
    """Every branch's per-level estimates, the paired differences, and the two rules' answers. The set sizes
    give one-replicate intervals (Wilson, Newcombe); without them n = 1 carries no interval."""
    order = list(config.BRANCHES)
    branches = sorted({r["branch"] for r in recs} | {"ticket"},
                      key=lambda b: (order.index(b) if b in order else len(order), b))
    dense = _by_level(recs, "ticket").get(0, {})
    dense_valid = {rep: r["valid_accuracy"] for rep, r in dense.items()}
    dense_test = {rep: r["test_accuracy"] for rep, r in dense.items()}
    levels: dict[str, dict[int, LevelStats]] = {}
    for branch in branches:
        levels[branch] = {}
        for lvl, reps in sorted(_by_level(recs, branch).items()):
            valid = {rep: r["valid_accuracy"] for rep, r in reps.items()}
            test = {rep: r["test_accuracy"] for rep, r in reps.items()}
            vs_dense = stats.paired_difference(valid, dense_valid, valid_examples)
            levels[branch][lvl] = LevelStats(
                lvl, dict(sorted(reps.items())), stats.accuracy(valid.values(), valid_examples),
                stats.accuracy(test.values(), test_examples), vs_dense,
                stats.paired_difference(test, dense_test, test_examples), matches(vs_dense) if lvl else None)
    controls: dict[str, dict[int, dict[str, Estimate]]] = {}
    for control in branches[1:]:
        controls[control] = {}
        for lvl, s in levels[control].items():
            if lvl == 0 or lvl not in levels["ticket"]:
                continue
            t = levels["ticket"][lvl]
            controls[control][lvl] = {
                "valid": stats.paired_difference(t.values("valid_accuracy"), s.values("valid_accuracy"),
                                                 valid_examples),
                "test": stats.paired_difference(t.values("test_accuracy"), s.values("test_accuracy"), test_examples)}
    return Analysis(branches, levels, choose_level(recs), controls, valid_examples, test_examples)
