"""The study's claims judged level by level (lth_tf.report.verdicts), on hand-made records whose answers are
known: each rule's three answers, the four verdicts, pairing across runs by seed, and the Markdown."""
import types

import pytest

from lth_tf.config import DataConfig, RunConfig
from lth_tf.report.analysis import analyse
from lth_tf.report.stats import Estimate
from lth_tf.report.verdicts import AGAINST, CLAIMS, FOR, NONE, Judgement, Pair, across_pairs, answer, judge, \
    rows, section, simultaneous, verdict, within_pairs

CLAIM = {c.key: c for c in CLAIMS}


def within(cell, claim):
    return judge(within_pairs(cell, claim), claim.margin)


def across(cell, base):
    return judge(across_pairs(cell, base), 0.0)


def rec(replicate, branch, level, valid, sparsity=None):
    sparsity = 1 - 0.8 ** level if sparsity is None else sparsity
    return {"replicate": replicate, "branch": branch, "level": level, "sparsity": sparsity,
            "remaining": 1 - sparsity, "valid_accuracy": valid, "test_accuracy": valid}


def cell(recs, mode="ticket", seeds=None, split="study"):
    an = analyse(recs, valid_examples=10_000, test_examples=10_000)
    seeds = seeds or {r: r for r in an.replicates}
    return types.SimpleNamespace(dataset="imdb", model="cnn", mode=mode, an=an, seeds=seeds,
                                 cfg=RunConfig(data=DataConfig(split=split)))


def est(low, high):
    return Estimate((low + high) / 2, low, high, 3, "t")


@pytest.mark.parametrize("low, high, margin, expected", [
    (0.01, 0.02, 0, FOR), (-0.02, -0.01, 0, AGAINST), (-0.01, 0.01, 0, NONE),
    # "matches or beats", 1-point margin: within it, shown beyond it, or too wide to show either
    (-0.005, 0.01, 0.01, FOR), (-0.03, -0.015, 0.01, AGAINST), (-0.015, -0.005, 0.01, NONE),
    (-0.2, 0.2, 0.01, NONE),
])
def test_each_answer_comes_from_where_the_interval_lies(low, high, margin, expected):
    assert answer(est(low, high), margin) == expected


def test_matching_needs_an_interval_inside_the_margin_not_only_one_that_holds_0():
    # two replicates 3 points apart: ticket − dense −0.5 ± 19 points (t = 12.7) holds 0 but shows nothing
    recs = [rec(0, "ticket", 0, 0.88), rec(1, "ticket", 0, 0.85), rec(0, "ticket", 1, 0.865),
            rec(1, "ticket", 1, 0.865)]
    judged = within(cell(recs), CLAIM["ticket_vs_dense"])
    assert judged[0].estimate.low < -0.1 < 0 < judged[0].estimate.high and judged[0].answer == NONE
    assert verdict(judged) == "undecided" and cell(recs).an.ticket[1].matches is False


def test_no_interval_is_not_judged():
    assert answer(Estimate(0.01, None, None, 1)) is None


@pytest.mark.parametrize("answers, expected", [
    ([FOR, NONE], "confirmed"), ([AGAINST, NONE], "refuted"), ([FOR, AGAINST], "mixed: depends on the level"),
    ([NONE, NONE], "undecided"), ([], "not tested"),
])
def test_the_four_verdicts_and_not_tested(answers, expected):
    assert verdict([Judgement(i + 1, 0.2, est(0, 0), a) for i, a in enumerate(answers)]) == expected


def three_replicates():
    """Dense 0.85 ± small noise; level 1 clearly better than dense, level 2 clearly worse; reinit equal at
    level 1 (noisy), clearly worse at level 2."""
    noise = [0.000, 0.001, -0.001]
    recs = []
    for r, e in enumerate(noise):
        recs += [rec(r, "ticket", 0, 0.85 + e), rec(r, "ticket", 1, 0.87 + e), rec(r, "ticket", 2, 0.80 + e),
                 rec(r, "reinit", 1, 0.87 + [0.02, -0.02, 0.0][r]), rec(r, "reinit", 2, 0.70 + e)]
    return recs


def test_within_a_run_against_dense_and_a_control():
    c = cell(three_replicates())
    dense = within(c, CLAIM["ticket_vs_dense"])
    assert [(j.level, j.answer) for j in dense] == [(1, FOR), (2, AGAINST)]
    assert verdict(dense) == "mixed: depends on the level"
    reinit = within(c, CLAIM["reset_vs_reinit"])
    assert [(j.level, j.answer) for j in reinit] == [(1, NONE), (2, FOR)]
    assert verdict(reinit) == "confirmed"


def test_rewinding_is_paired_with_the_theta0_ticket_by_seed_not_by_replicate_index():
    base = cell(three_replicates())  # seeds 0, 1, 2 at replicate indices 0, 1, 2
    # the rewinding run holds seeds 2 and 1 at indices 0 and 1; each is 0.01 above the θ0 ticket of its seed
    by_seed = {r["replicate"]: r for r in three_replicates() if r["branch"] == "ticket" and r["level"] == 2}
    recs = [rec(0, "ticket", 2, by_seed[2]["valid_accuracy"] + 0.01), rec(1, "ticket", 2, by_seed[1]["valid_accuracy"] + 0.01),
            rec(0, "ticket", 0, 0.85), rec(1, "ticket", 0, 0.85)]
    late = cell(recs, mode="late_rewind", seeds={0: 2, 1: 1})
    judged = across(late, base)
    assert [j.level for j in judged] == [2]
    assert judged[0].estimate.mean == pytest.approx(0.01) and judged[0].estimate.n == 2


def test_rows_skip_claims_a_run_cannot_answer_and_the_section_says_so():
    ticket_only = cell([rec(0, "ticket", 0, 0.85), rec(0, "ticket", 1, 0.86)], split="pooled")
    assert [r.claim.key for r in rows([ticket_only])] == ["ticket_vs_dense"]
    text = "\n".join(section([ticket_only]))
    assert "IMDb + CNN (pooled rows)" in text
    assert "Not tested by the runs given: reset to θ0 beats" in text and "late rewinding helps" in text
    assert "1 (20.0%)" in text  # n = 1: +1 point, Newcombe's interval on 10,000 examples above −1 -> "for"


def pair(level, differences, examples=None):
    """A level whose ours − theirs per replicate is `differences` (theirs 0.85)."""
    return Pair(level, 1 - 0.8 ** level, {r: 0.85 + d for r, d in enumerate(differences)},
                {r: 0.85 for r in range(len(differences))}, examples)


def test_all_levels_at_once_widen_each_interval_so_a_lone_level_no_longer_decides():
    # level 1: +1.0 ± 0.5 points at 95% (for); nine levels of no difference: at once (m = 10, each interval at
    # 99.5%, t on 2 df = 14.1 instead of 4.3) level 1 is ± 1.6 and no longer for; level 2's +5 stays for
    lone = [pair(1, [0.010, 0.012, 0.008])] + [pair(lvl, [0.0, 0.0, 0.0]) for lvl in range(2, 11)]
    assert [j.answer for j in judge(lone, 0.0)][:2] == [FOR, NONE] and verdict(judge(lone, 0.0)) == "confirmed"
    at_once = simultaneous(lone, 0.0)
    assert at_once[0].estimate.half_width == pytest.approx(14.089 * 0.002 / 3 ** 0.5, rel=1e-3)
    assert verdict(at_once) == "undecided"
    strong = [pair(1, [0.010, 0.012, 0.008]), pair(2, [0.05, 0.051, 0.049])] + lone[2:]
    assert [j.answer for j in simultaneous(strong, 0.0)][:2] == [NONE, FOR]
    # one level: at once is per level; one replicate: Newcombe's interval widens the same way
    assert simultaneous(lone[:1], 0.0) == judge(lone[:1], 0.0) and simultaneous([], 0.0) == []
    single = [pair(lvl, [0.011], examples=10_000) for lvl in (1, 2, 3)]  # +1.1 [+0.1, +2.1]; at once [-0.1, +2.3]
    assert judge(single, 0.0)[0].answer == FOR and simultaneous(single, 0.0)[0].answer == NONE
    assert simultaneous(single, 0.0)[0].estimate.half_width > judge(single, 0.0)[0].estimate.half_width


def test_the_section_gives_each_row_its_verdict_with_all_levels_at_once():
    text = "\n".join(section([cell(three_replicates())]))
    row = next(line for line in text.splitlines() if line.startswith("| a winning ticket"))
    # ticket − dense: +2 points at level 1, −5 at level 2, replicates within 0.1 point: both survive m = 2
    assert row.endswith("| **mixed: depends on the level** | **mixed: depends on the level** (1 / 1 of 2) |")
    assert "all levels at once" in text and "1 − 0.05/m" in text
