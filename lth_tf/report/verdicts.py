"""The study's claims, judged level by level from our runs (cells of lth_tf.report.study).

At every level where both sides finished, a claim gets one answer from the 95% interval of a paired difference
of VALIDATION accuracy (per replicate; one replicate: Newcombe's interval from the validation set's size):
`for` (the interval lies above 0), `against` (it lies below 0: the other way round, shown), or `no difference
shown` (it holds 0). "Matches or beats" is judged against the matching rule's margin instead of 0
(lth_tf.report.analysis.MATCH_MARGIN): for where the interval lies above −margin, against where it lies below
−margin, so a wide interval is no evidence either way. A claim's verdict for a run:
confirmed (for at some level, against at none), refuted (the reverse), mixed (both: it depends on the level),
undecided (neither). Those intervals are per level: one level against the trend of its neighbours is weak
evidence. The last column judges all of a row's levels at once (`simultaneous`: Bonferroni-adjusted intervals),
so its verdict, a statement about every level, holds with 95% confidence.
"""
from __future__ import annotations

import dataclasses
import functools

from lth_tf.report import protocol, stats
from lth_tf.report.analysis import MATCH_MARGIN, spans
from lth_tf.report.stats import Estimate

FOR, AGAINST, NONE = "for", "against", "no difference shown"
RULE = ("judged per level on the paired difference of VALIDATION accuracy (95% interval: t over replicates; "
        "n = 1: Newcombe's, from the validation set's size): **for** where the interval lies above 0, **against** "
        "where it lies below 0, otherwise no difference shown; \"matches or beats\" is judged the same way against "
        f"−{100 * MATCH_MARGIN:g} point instead of 0 (non-inferiority: the matching rule's margin), so an interval "
        "too wide to show either is no evidence. Verdict: confirmed (for at some level, against at none), refuted "
        "(against, never for), mixed (both: it depends on the level), undecided (neither). These intervals are per "
        "level, so a lone level against its neighbours is weak evidence; the last column judges a row's m levels "
        "at once (Bonferroni: each interval at 1 − 0.05/m), so that its verdict holds with 95% confidence over "
        "all of them")


@dataclasses.dataclass(frozen=True)
class Claim:
    key: str
    text: str  # the study's claim, as it drew it
    difference: str  # what is judged (> 0 supports the claim)
    control: str = ""  # the branch the ticket is compared with inside one run, if any
    margin: float = 0.0  # judged against −margin instead of 0 ("matches or beats": a non-inferiority margin)


CLAIMS = (
    Claim("ticket_vs_dense", "a winning ticket matches or beats the dense network",
          f"ticket − dense, against −{100 * MATCH_MARGIN:g} point", margin=MATCH_MARGIN),
    Claim("reset_vs_reinit", "reset to θ0 beats random re-initialisation (same mask)", "ticket − reinit",
          control="reinit"),
    Claim("ticket_vs_random_mask", "the ticket's mask beats a random mask of its sparsity",
          "ticket − random_mask", control="random_mask"),
    Claim("rewinding_helps", "late rewinding helps (the study's second table)",
          "this run's ticket − the θ0 ticket, same seed"),
)


@dataclasses.dataclass(frozen=True)
class Judgement:
    level: int
    sparsity: float
    estimate: Estimate
    answer: str  # FOR, AGAINST or NONE


def answer(est: Estimate, margin: float = 0.0) -> str | None:
    """FOR, AGAINST or NONE from where `est`'s interval lies with respect to −margin; None when it has no
    interval (not judged)."""
    if not est.has_interval:
        return None
    if est.high < -margin:
        return AGAINST
    return FOR if est.low > -margin else NONE


def verdict(judgements: list[Judgement]) -> str:
    answers = {j.answer for j in judgements}
    if not judgements:
        return "not tested"
    if FOR in answers and AGAINST in answers:
        return "mixed: depends on the level"
    return "confirmed" if FOR in answers else "refuted" if AGAINST in answers else "undecided"


@dataclasses.dataclass(frozen=True)
class Pair:
    """One level's two sides of a claim: validation accuracy per replicate (per seed, across runs)."""
    level: int
    sparsity: float
    ours: dict
    theirs: dict
    examples: int | None


def judge(pairs: list[Pair], margin: float, confidence: float = stats.CONFIDENCE) -> list[Judgement]:
    """Each pair's answer from the interval of its paired difference at `confidence` (levels with no
    interval are left out)."""
    out = []
    for p in pairs:
        est = stats.paired_difference(p.ours, p.theirs, p.examples, confidence)
        a = answer(est, margin)
        if a is not None:
            out.append(Judgement(p.level, p.sparsity, est, a))
    return out


def simultaneous(pairs: list[Pair], margin: float) -> list[Judgement]:
    """Every level judged at once: Bonferroni-adjusted intervals (confidence 1 − 0.05/m over the m levels
    that have one), so that all of them hold together with 95% confidence, and with them the verdict. Their
    estimates only answer; they are never printed as 95% intervals."""
    m = len(judge(pairs, margin))
    return judge(pairs, margin, 1 - (1 - stats.CONFIDENCE) / m) if m else []


def within_pairs(cell, claim: Claim) -> list[Pair]:
    """A claim inside one run: the ticket against the dense network or against a control, level by level."""
    an, key = cell.an, "valid_accuracy"
    if claim.key == "ticket_vs_dense":
        dense = an.dense.values(key) if an.dense else {}
        return [Pair(lvl, s.sparsity, s.values(key), dense, an.valid_examples)
                for lvl, s in sorted(an.ticket.items()) if lvl]
    control = an.levels.get(claim.control, {})
    return [Pair(lvl, an.ticket[lvl].sparsity, an.ticket[lvl].values(key), control[lvl].values(key),
                 an.valid_examples) for lvl in sorted(an.controls.get(claim.control, {}))]


def across_pairs(cell, base) -> list[Pair]:
    """`cell`'s ticket (late rewinding or fine-tuning) against `base`'s θ0 ticket, paired by seed, per level."""
    pairs = []
    for lvl, s in sorted(cell.an.ticket.items()):
        if lvl == 0 or lvl not in base.an.ticket:
            continue
        ours = {cell.seeds[r]: v for r, v in s.values("valid_accuracy").items()}
        theirs = {base.seeds[r]: v for r, v in base.an.ticket[lvl].values("valid_accuracy").items()}
        if set(ours) & set(theirs):
            pairs.append(Pair(lvl, s.sparsity, ours, theirs, cell.an.valid_examples))
    return pairs


@dataclasses.dataclass
class Row:
    claim: Claim
    cell: object
    pairs: list[Pair]

    @functools.cached_property
    def judgements(self) -> list[Judgement]:
        """Per level, each at 95%."""
        return judge(self.pairs, self.claim.margin)

    @property
    def verdict(self) -> str:
        return verdict(self.judgements)

    @functools.cached_property
    def simultaneous(self) -> list[Judgement]:
        return simultaneous(self.pairs, self.claim.margin)


def rows(cells: list) -> list[Row]:
    """Every claim for every run it can be judged on (controls and rewinding runs present or not)."""
    base = {(c.dataset, c.model): c for c in cells if c.mode == "ticket"}
    out = []
    for claim in CLAIMS:
        for cell in cells:
            if claim.key == "rewinding_helps":
                if cell.mode != "ticket" and (cell.dataset, cell.model) in base:
                    out.append(Row(claim, cell, across_pairs(cell, base[(cell.dataset, cell.model)])))
            elif not claim.control or claim.control in cell.an.controls:
                out.append(Row(claim, cell, within_pairs(cell, claim)))
    return out


def _levels(judgements: list[Judgement]) -> str:
    """'1-3 (20.0-48.8%); 7 (79.0%)': consecutive levels as ranges, with their sparsity."""
    if not judgements:
        return "-"
    at = {j.level: j for j in judgements}

    def one(first, last):
        if first == last:
            return f"{first} ({100 * at[first].sparsity:.1f}%)"
        return f"{first}-{last} ({100 * at[first].sparsity:.1f}-{100 * at[last].sparsity:.1f}%)"
    return "; ".join(one(*span) for span in spans([j.level for j in judgements]))


def _run_label(cell) -> str:
    mode = {"ticket": "", "finetune": ", fine-tune", "late_rewind": ", true late rewinding"}[cell.mode]
    split = cell.cfg.data.split
    rows_used = "" if split in ("study", "official") else f" ({split} rows)"
    return f"{protocol.configuration(cell.dataset, cell.model)}{rows_used}{mode}"


def _extreme(judgements: list[Judgement]) -> str:
    """The largest difference each way, with its level: what the verdict rests on."""
    if not judgements:
        return "-"
    lo = min(judgements, key=lambda j: j.estimate.mean)
    hi = max(judgements, key=lambda j: j.estimate.mean)
    ns = sorted({j.estimate.n for j in judgements})
    n = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
    return f"{stats.points(lo.estimate)} (level {lo.level}) to {stats.points(hi.estimate)} (level {hi.level}); {n}"


def _at_once(judgements: list[Judgement]) -> str:
    """'**confirmed** (12 / 0 of 20)': the simultaneous verdict and how many levels it rests on."""
    if not judgements:
        return "-"
    count = {a: sum(j.answer == a for j in judgements) for a in (FOR, AGAINST)}
    return f"**{verdict(judgements)}** ({count[FOR]} / {count[AGAINST]} of {len(judgements)})"


def section(cells: list) -> list[str]:
    """The verdicts' Markdown: one row per (claim, run)."""
    lines = ["## Verdicts on the study's claims, level by level (`lth_tf.report.verdicts`)", "",
             f"Each claim is {RULE}.", "",
             "| the study's claim | difference judged | run | for | against | no difference shown | "
             "range (valid, points) | verdict | verdict, all levels at once (for / against, of m levels) |",
             "|---|---|---|---|---|---|---|---|---|"]
    judged = rows(cells)
    for row in judged:
        by = {a: [j for j in row.judgements if j.answer == a] for a in (FOR, AGAINST, NONE)}
        lines.append(f"| {row.claim.text} | {row.claim.difference} | {_run_label(row.cell)} | {_levels(by[FOR])} | "
                     f"{_levels(by[AGAINST])} | {_levels(by[NONE])} | {_extreme(row.judgements)} | "
                     f"**{row.verdict}** | {_at_once(row.simultaneous)} |")
    tested = {r.claim.key for r in judged}
    missing = [c.text for c in CLAIMS if c.key not in tested]
    if missing:
        lines += ["", "Not tested by the runs given: " + "; ".join(missing) + "."]
    return lines
