"""The report's statistics and rules against hand-computed values, on hand-made records (no training).
The fakes below are shared with tests/test_report_outputs.py."""
import math
import os

import pytest
from scipy.stats import binomtest

from lth_tf import atomic, rundir
from lth_tf.config import DataConfig, ExperimentConfig, ModelConfig, PruneConfig, RunConfig
from lth_tf.report import analyse, analysis as analysis_lib, choose_level, stats

TENSORS = ("embedding/embeddings", "conv3/kernel", "conv3/bias", "output/kernel")


def metrics(rep, level, branch, valid, test, seed=None):
    remaining = 0.8 ** level
    history = [{"epoch": e, "train_loss": 0.7 - 0.1 * e, "train_accuracy": 0.5 + 0.1 * e, "valid_loss": 0.6,
                "valid_accuracy": valid, "steps": 10 * e, "seconds": 1.0} for e in (1, 2)]
    return {"replicate": rep, "branch": branch, "level": level, "seed": rep if seed is None else seed,
            "sparsity": 1 - remaining, "sparsity_without_embedding": 1 - remaining, "remaining": remaining,
            "sparsity_by_tensor": {t: 1 - remaining for t in TENSORS}, "valid_loss": 0.4, "valid_accuracy": valid,
            "test_loss": 0.4, "test_accuracy": test, "epochs_trained": 2, "best_epoch": 2, "steps": 20,
            "seconds": 3.0, "history": history}


def grid(valid, test=None, branches=("ticket",), seed0=0):
    """valid[rep][level] (level 0 = dense) -> metrics of every branch; controls 2 points below the ticket."""
    out = []
    for rep, row in enumerate(valid):
        for level, v in enumerate(row):
            t = (test[rep][level] if test else v - 0.01)
            for i, branch in enumerate(branches if level else ["ticket"]):
                out.append(metrics(rep, level, branch, v - 0.02 * i, t - 0.02 * i, seed=seed0 + rep))
    return out


def config(dataset="imdb", model="cnn", levels=3, replicates=2, seed=0, **experiment):
    return RunConfig(data=DataConfig(dataset=dataset), model=ModelConfig(model=model),
                     prune=PruneConfig(levels=levels),
                     experiment=ExperimentConfig(replicates=replicates, seed=seed, **experiment))


def make_run(path, cfg, all_metrics, counts=(28_000, 12_000, 10_000)):
    """A run directory with config.json, data.json (counts; None: none) and every task's metrics.json."""
    run = rundir.RunDir(str(path))
    os.makedirs(run.path, exist_ok=True)
    run.write_config(cfg, "f" * 16)
    if counts:
        atomic.write_json(run.file(rundir.DATA), {
            "class_names": ["neg", "pos"], "num_classes": 2, "fingerprint": "f" * 16,
            "stats": {"counts": dict(zip(("train", "valid", "test"), counts))}})
    for m in all_metrics:
        run.write_metrics(rundir.Task(m["replicate"], m["level"], m["branch"]), m)
    return run


# --- statistics ---------------------------------------------------------------------------------------------
def test_t_interval_of_a_known_sample():
    est = stats.t_interval([0.80, 0.82, 0.84])
    # mean 0.82, s = 0.02, t(0.975, 2) = 4.302653: half-width 4.302653 * 0.02 / sqrt(3) = 0.0496828
    assert est.n == 3 and est.method == "t" and est.mean == pytest.approx(0.82)
    assert est.half_width == pytest.approx(0.0496828, abs=1e-7)
    assert (est.low, est.high) == (pytest.approx(0.82 - 0.0496828, abs=1e-7), pytest.approx(0.82 + 0.0496828, abs=1e-7))
    two = stats.t_interval([0.5, 0.7])  # t(0.975, 1) = 12.7062: 12.7062 * 0.141421 / sqrt(2) = 1.27062
    assert two.half_width == pytest.approx(1.270620, abs=1e-6)
    one = stats.t_interval([0.9])
    assert one.n == 1 and not one.has_interval and stats.pct(one) == "90.00"
    assert stats.t_interval([]).n == 0 and stats.pct(stats.t_interval([])) == "-"


def test_paired_difference_pairs_by_replicate():
    a = {0: 0.85, 1: 0.83, 2: 0.86}
    b = {0: 0.84, 1: 0.80, 2: 0.85, 3: 0.90}  # replicate 3 has no partner: left out
    est = stats.paired_difference(a, b)
    # differences 0.01, 0.03, 0.01: mean 0.016667, s = 0.011547, half-width 4.302653 * 0.011547 / sqrt(3)
    assert est.n == 3 and est.mean == pytest.approx(0.0166667, abs=1e-7)
    assert est.half_width == pytest.approx(0.0286844, abs=1e-7)
    assert stats.points(est) == "+1.67 ± 2.87"
    # unpaired, the same numbers would give a much wider interval: pairing removes the replicate effect
    assert est.half_width < stats.t_interval([0.85, 0.83, 0.86]).half_width


@pytest.mark.parametrize("k,n", [(870, 1000), (8700, 10000), (0, 50), (50, 50), (3, 7), (600, 720)])
def test_wilson_matches_scipy_binomtest(k, n):
    low, high = stats.wilson(k, n)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert low == pytest.approx(ci.low, abs=1e-12) and high == pytest.approx(ci.high, abs=1e-12)


def test_one_replicate_carries_the_test_sets_binomial_interval():
    est = stats.accuracy([0.87], examples=10_000)  # a 10,000-review test set at 87%: about ±0.66 points
    assert est.method == "wilson" and est.n == 1 and est.examples == 10_000
    assert 0.0062 < est.half_width < 0.0070 and est.low < 0.87 < est.high
    assert stats.pct(est) == "87.00 [86.33, 87.64]" and "Wilson" in est.describe()
    assert not stats.accuracy([0.87]).has_interval  # set size unknown: no interval is made up
    assert stats.accuracy([0.86, 0.88], examples=10_000).method == "t"  # n >= 2: replicates, not the set


def test_newcombe_interval_reproduces_newcombes_example():
    # Newcombe (1998), example (a): 56/70 - 48/80, method 10 (hybrid score): 0.0524 to 0.3339
    low, high = stats.newcombe(56 / 70, 48 / 80, 70, 80)
    assert low == pytest.approx(0.0524, abs=5e-5) and high == pytest.approx(0.3339, abs=5e-5)
    est = stats.paired_difference({0: 56 / 70}, {0: 48 / 80}, examples=None)
    assert est.n == 1 and not est.has_interval


# --- the two rules ------------------------------------------------------------------------------------------
# Validation accuracy [replicate][level]; level 0 is dense. Alone, replicate 0 would pick level 1, replicate 1
# level 3 and replicate 2 level 2; over replicates, level 2 has the best mean (0.8700), 1 ± 0.25 points above
# dense in every replicate (so it matches the dense network; no other level does).
VALID = [[0.86, 0.880, 0.871, 0.80, 0.70],
         [0.85, 0.840, 0.860, 0.87, 0.71],
         [0.87, 0.860, 0.879, 0.83, 0.69]]


def test_one_level_per_run_chosen_on_mean_validation_accuracy():
    recs = grid(VALID)
    individually = {rep: max(range(1, 5), key=lambda lvl: (VALID[rep][lvl], lvl)) for rep in range(3)}
    assert individually == {0: 1, 1: 3, 2: 2}  # the former rule: three tickets at three levels
    assert [choose_level(recs, rep) for rep in range(3)] == [2, 2, 2]
    assert choose_level(recs) == 2 and choose_level([], 0) is None
    an = analyse(recs)
    assert an.chosen == 2 and [r["level"] for r in an.ticket[2].replicates.values()] == [2, 2, 2]
    # ties go to the sparser level
    assert choose_level(grid([[0.9, 0.8, 0.85, 0.85]])) == 3
    # a run in progress: only levels finished by the most replicates compete
    partial = [m for m in grid(VALID) if not (m["replicate"] == 2 and m["level"] >= 2)]
    assert choose_level(partial) == 1  # levels 1 only has all three replicates
    test = [[v - 0.5 for v in row] for row in VALID]  # test accuracy never chooses
    assert choose_level(grid(VALID, test)) == 2


def test_matching_rule_on_the_paired_validation_difference():
    an = analyse(grid(VALID))
    dense = [row[0] for row in VALID]
    for level in range(1, 5):
        diff = [VALID[rep][level] - dense[rep] for rep in range(3)]
        mean, s = sum(diff) / 3, math.sqrt(sum((d - sum(diff) / 3) ** 2 for d in diff) / 2)
        lower = mean - 4.302652729749462 * s / math.sqrt(3)
        assert an.ticket[level].valid_vs_dense.low == pytest.approx(lower)
        assert an.ticket[level].matches is (lower > -0.01)
    # by hand: level 1 0.0 ± 0.043 (holds 0 but too wide to show it within 1 point), level 2 +0.01 ± 0.0025
    # (within), level 3 -0.0267 ± 0.1034 (wide: not shown), level 4 -0.16 ± 0.0497 (clearly worse)
    assert [an.ticket[lvl].matches for lvl in range(1, 5)] == [False, True, False, False]
    assert an.sparsest_match == 2 and analysis_lib.matches(stats.t_interval([0.1])) is None
    # one replicate: judged with the validation set's sampling error (Newcombe), or not at all without its size
    single = grid([[0.86, 0.865, 0.80]])
    judged = analyse(single, valid_examples=12_000, test_examples=10_000)
    assert [judged.ticket[lvl].matches for lvl in (1, 2)] == [True, False]
    assert judged.ticket[1].valid_vs_dense.method == "newcombe" and judged.dense.test.method == "wilson"
    assert analyse(single).ticket[1].matches is None and analyse(single).sparsest_match is None


def test_controls_are_paired_with_the_ticket_at_each_level():
    an = analyse(grid(VALID, branches=("ticket", "reinit")))
    d = an.controls["reinit"][2]["valid"]
    assert d.n == 3 and d.mean == pytest.approx(0.02) and d.half_width == pytest.approx(0.0, abs=1e-12)
    assert an.levels["reinit"][0].n == 3 and an.levels["reinit"][0].valid == an.dense.valid  # dense is shared
    assert 0 not in an.controls["reinit"]
