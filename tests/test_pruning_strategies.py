"""Pruning strategies: LAMP against a worked example, LAMP never empties a tensor, global made safe
(refusal naming the tensor, --global_ranking=no_embedding), options from the settings."""
import dataclasses
import warnings

import numpy as np
import pytest

from lth_tf import config
from lth_tf.config import DataConfig, PruneConfig, RunConfig
from lth_tf.errors import UserError
from lth_tf.sparsity import pruning
from lth_tf.sparsity.masks import dense_masks
from lth_tf.sparsity.pruning import lamp_scores, options, prune, prune_global, prune_lamp

# The worked example of docs/instruments.md: a conv kernel of small weights and an embedding of large ones.
A, B = "conv3/kernel", "embedding/embeddings"
EXAMPLE = {A: np.array([0.1, 0.2, 0.3]), B: np.array([-4.0, 1.0, 0.5, 2.0])}


def _dense(weights):
    return dense_masks({k: np.shape(v) for k, v in weights.items()})


def test_lamp_scores_of_the_worked_example_by_hand():
    # A sorted by magnitude: 0.1, 0.2, 0.3; squares 0.01, 0.04, 0.09; suffix sums 0.14, 0.13, 0.09
    assert lamp_scores(EXAMPLE[A]) == pytest.approx([0.01 / 0.14, 0.04 / 0.13, 1.0])
    # B sorted: 0.5 (pos 2), 1 (pos 1), 2 (pos 3), 4 (pos 0); squares .25, 1, 4, 16; suffix 21.25, 21, 20, 16
    assert lamp_scores(EXAMPLE[B]) == pytest.approx([1.0, 1 / 21, 0.25 / 21.25, 4 / 20])


def test_lamp_local_and_global_on_the_worked_example():
    masks = _dense(EXAMPLE)
    # 7 survivors, fraction 0.5: round(3.5) = 4 pruned. LAMP's four lowest scores: B[2] 1/85, B[1] 1/21,
    # A[0] 1/14, B[3] 1/5 (A[1], 4/13, survives).
    lamp = prune(masks, EXAMPLE, 0.5, "lamp")
    assert lamp[A].tolist() == [False, True, True] and lamp[B].tolist() == [True, False, False, False]
    # local: A loses round(1.5) = 2, B round(2.0) = 2, the smallest of each
    local = prune(masks, EXAMPLE, 0.5, "local")
    assert local[A].tolist() == [False, False, True] and local[B].tolist() == [True, False, False, True]
    # global by magnitude: 0.1, 0.2, 0.3 (all of A), 0.5: the conv kernel is emptied, so prune() refuses
    raw = prune_global(masks, EXAMPLE, 0.5)
    assert raw[A].sum() == 0 and raw[B].tolist() == [True, True, False, True]
    with pytest.raises(UserError) as e:
        prune(masks, EXAMPLE, 0.5, "global")
    message = str(e.value)
    assert message.startswith("--strategy=global") and A in message and "all 3 surviving weights" in message
    assert "--global_ranking=no_embedding" in message and "--allow_empty_tensors" in message
    # the embedding out of the ranking, pruned locally by the same fraction: here the same as local
    no_emb = prune(masks, EXAMPLE, 0.5, "global", global_ranking="no_embedding")
    assert all(np.array_equal(no_emb[k], local[k]) for k in masks)


def test_allow_empty_tensors_warns_and_goes_on():
    masks = _dense(EXAMPLE)
    with pytest.warns(UserWarning, match=r"conv3/kernel.*going on"):
        out = prune(masks, EXAMPLE, 0.5, "global", allow_empty_tensors=True)
    assert out[A].sum() == 0
    # a tensor already empty is not "emptied" again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = prune(out, EXAMPLE, 0.5, "global")
    assert again[A].sum() == 0


def test_lamp_score_properties():
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 100):
        w = rng.normal(size=size) * rng.choice([1e-3, 1.0, 1e3])
        s = lamp_scores(w)
        largest = np.flatnonzero(np.abs(w) == np.abs(w).max())[-1]
        assert s[largest] == 1.0
        assert np.all(np.delete(s, largest) <= 0.5 + 1e-12)
        order = np.argsort(np.abs(w), kind="stable")
        assert np.all(np.diff(s[order]) >= -1e-12)  # monotone in magnitude: LAMP is per-tensor magnitude pruning
        assert lamp_scores(w * 1000.0) == pytest.approx(s)  # scale-free: a tensor's scale does not matter
    assert lamp_scores(np.zeros(3)).tolist() == [0.0, 0.0, 1.0]  # ties by position: the last one is "largest"
    assert lamp_scores(np.array([1.0, 1.0])).tolist() == [0.5, 1.0]


def test_lamp_never_empties_a_tensor():
    rng = np.random.default_rng(1)
    for trial in range(30):
        sizes = rng.integers(1, 60, size=rng.integers(2, 6))
        scales = 10.0 ** rng.uniform(-3, 3, size=sizes.size)
        w = {f"t{i}": rng.normal(size=n) * s for i, (n, s) in enumerate(zip(sizes, scales))}
        masks = _dense(w)
        fraction = float(rng.uniform(0.05, 0.6))
        for _ in range(20):
            alive = sum(int(m.sum()) for m in masks.values())
            if int(round(fraction * alive)) > alive - len(masks):
                break  # more than the non-largest survivors: emptying is then unavoidable
            before = masks
            masks = prune(masks, w, fraction, "lamp")  # raises if a tensor were emptied
            for name, m in masks.items():
                alive_before = np.flatnonzero(before[name].ravel())
                largest = alive_before[np.argmax(np.abs(w[name].ravel()[alive_before]))]
                assert m.ravel()[largest], (trial, name)  # every tensor's largest survivor survives
            assert sum(int(m.sum()) for m in masks.values()) == alive - int(round(fraction * alive))


def test_lamp_refuses_when_a_round_must_empty_a_tensor():
    w = {"a": np.array([1.0]), "b": np.array([2.0])}
    with pytest.raises(UserError, match=r"--strategy=lamp .*all 1 surviving weights of a"):
        prune(_dense(w), w, 0.6, "lamp")


def test_global_on_a_study_like_cnn_refuses_and_no_embedding_fixes_it():
    rng = np.random.default_rng(2)
    w = {"embedding/embeddings": rng.normal(size=(200, 10)), "conv3/kernel": rng.normal(0, 0.008, (3, 10, 4)),
         "conv3/bias": rng.normal(0, 0.05, 4), "output/kernel": rng.normal(0, 0.05, (4, 1))}
    masks = _dense(w)
    with pytest.raises(UserError, match=r"conv3/(kernel|bias).*--global_ranking=no_embedding"):
        prune(masks, w, 0.2, "global")
    out = prune(masks, w, 0.2, "global", global_ranking="no_embedding")
    assert out["embedding/embeddings"].sum() == 2000 - 400  # locally, exactly round(0.2 * 2000)
    rest = [n for n in w if not n.startswith("embedding/")]
    alive = sum(w[n].size for n in rest)
    assert sum(int(out[n].sum()) for n in rest) == alive - round(0.2 * alive)  # one ranking over the others
    lamp = prune(masks, w, 0.2, "lamp")  # LAMP's scores are scale-free: no refusal, every tensor keeps weights
    assert all(lamp[n].any() for n in w)


def test_no_embedding_without_an_embedding_is_plain_global():
    rng = np.random.default_rng(3)
    w = {"conv3/kernel": rng.normal(size=(3, 4, 5)), "output/kernel": rng.normal(size=(5, 2))}
    masks = _dense(w)
    a, b = prune_global(masks, w, 0.3), prune_global(masks, w, 0.3, "no_embedding")
    assert all(np.array_equal(a[k], b[k]) for k in w)
    a, b = prune_lamp(masks, w, 0.3), prune_lamp(masks, w, 0.3, "no_embedding")
    assert all(np.array_equal(a[k], b[k]) for k in w)


def test_lamp_ties_by_tensor_then_position():
    w = {"x": np.array([1.0, 1.0]), "y": np.array([3.0, 3.0])}  # scores x: .5, 1; y: .5, 1
    out = prune_lamp(_dense(w), w, 0.25)  # round(1.0) = 1: the tie at .5 goes to x (first tensor), position 0
    assert out["x"].tolist() == [False, True] and out["y"].tolist() == [True, True]


def test_pure_and_deterministic():
    rng = np.random.default_rng(4)
    w = {"embedding/embeddings": rng.normal(size=(20, 3)), "conv3/kernel": rng.normal(size=(3, 3, 2))}
    masks = _dense(w)
    frozen = {k: v.copy() for k, v in masks.items()}
    for strategy in config.STRATEGIES:
        a = prune(masks, w, 0.3, strategy, global_ranking="no_embedding")
        b = prune(masks, w, 0.3, strategy, global_ranking="no_embedding")
        assert all(np.array_equal(a[k], b[k]) for k in w)
    assert all(np.array_equal(masks[k], frozen[k]) for k in w)  # inputs untouched


def test_bad_strategy_and_ranking():
    w = {"a": np.ones(4)}
    with pytest.raises(UserError, match="--strategy='magic'"):
        prune(_dense(w), w, 0.2, "magic")
    with pytest.raises(UserError, match="--global_ranking='none'"):
        prune(_dense(w), w, 0.2, "global", global_ranking="none")


def test_settings_and_options():
    assert tuple(pruning.STRATEGIES) == config.STRATEGIES == ("local", "global", "lamp")
    p = PruneConfig(strategy="global", global_ranking="no_embedding", allow_empty_tensors=True)
    assert options(p) == {"global_ranking": "no_embedding", "allow_empty_tensors": True}
    w = {"embedding/embeddings": np.arange(1.0, 11.0), "conv3/kernel": np.array([0.1, 0.2])}
    masks = _dense(w)
    out = prune(masks, w, 0.5, p.strategy, **options(p))
    assert out["conv3/kernel"].sum() == 1 and out["embedding/embeddings"].sum() == 5
    # --global_ranking applies to global and lamp with the embedding pruned; otherwise noted and not identity
    base = RunConfig()
    stray = RunConfig(prune=PruneConfig(global_ranking="no_embedding"))
    assert any("--global_ranking" in n for n in stray.validate())
    assert stray.identity() == base.identity()
    g = RunConfig(prune=PruneConfig(strategy="global"))
    g_no = RunConfig(prune=PruneConfig(strategy="global", global_ranking="no_embedding"))
    assert g.validate() == [] and g_no.validate() == [] and g.identity() != g_no.identity()
    dense_emb = RunConfig(prune=PruneConfig(strategy="global", global_ranking="no_embedding", prune_embedding=False))
    assert any("--global_ranking" in n for n in dense_emb.validate())
    # --allow_empty_tensors lets a stopped run go on: it does not name the run
    assert RunConfig(prune=PruneConfig(allow_empty_tensors=True)).identity() == base.identity()
    with pytest.raises(UserError, match="--strategy"):
        RunConfig(prune=PruneConfig(strategy="lamp ")).validate()
    assert RunConfig(prune=PruneConfig(strategy="lamp")).validate() == []


def test_split_settings():
    ag = dataclasses.replace(DataConfig(), dataset="ag_news")
    assert RunConfig(data=dataclasses.replace(ag, split="pooled")).validate() == []
    assert RunConfig(data=dataclasses.replace(ag, split="pooled")).identity() != RunConfig(data=ag).identity()
    with pytest.raises(UserError, match="--split=official"):
        RunConfig(data=dataclasses.replace(ag, split="official")).validate()
    with pytest.raises(UserError, match="--split=pooled"):
        RunConfig(data=DataConfig(split="pooled")).validate()
    sample = RunConfig(data=DataConfig(dataset="ag_news_sample", split="pooled"))
    assert any("--split=pooled" in n for n in sample.validate())
    assert sample.identity() == RunConfig(data=DataConfig(dataset="ag_news_sample")).identity()


def test_imp_passes_the_pruning_options(tmp_path):
    """An IMP task at level 1 prunes its parent's trained weights with the run's --global_ranking."""
    from lth_tf.lottery.imp import Experiment
    from lth_tf.rundir import RunDir, Task

    cfg = RunConfig(prune=PruneConfig(strategy="global", global_ranking="no_embedding"))
    run = RunDir(str(tmp_path / "run"))
    run.create()
    run.write_config(cfg, "f" * 16)
    parent = Task(0, 0, "ticket")
    run.write_masks(parent, _dense(EXAMPLE))
    run.write_weights(parent, EXAMPLE)
    data = type("Data", (), {"train": [0] * 10})()
    cfg = dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, prune_fraction=0.5))
    masks = Experiment(cfg, run, data).masks(Task(0, 1, "ticket"), {k: np.shape(v) for k, v in EXAMPLE.items()})
    assert masks[A].tolist() == [False, False, True]  # the embedding left out of the ranking: not emptied


def test_an_emptied_bias_only_warns():
    w = {"conv3/kernel": np.array([5.0, 6.0, 7.0, 8.0]), "output/bias": np.array([0.01])}
    with pytest.warns(UserWarning, match=r"all 1 surviving weights of output/bias.*--noprune_bias"):
        out = prune(_dense(w), w, 0.4, "global")  # round(2.0) = 2: the bias and the 5.0
    assert out["output/bias"].sum() == 0 and out["conv3/kernel"].tolist() == [False, True, True, True]


def test_prune_round_is_prune_with_the_run_settings():
    """The one call IMP, the early-bird draw and init_magnitude share: prune() with the PruneConfig's fraction,
    strategy and options; extra weights ignored; an override (allow_empty_tensors) replaces one option."""
    p = PruneConfig(strategy="global", global_ranking="no_embedding", prune_fraction=0.5)
    extra = dict(EXAMPLE, **{"not/masked": np.ones(2)})
    expected = prune(_dense(EXAMPLE), EXAMPLE, 0.5, "global", **options(p))
    got = pruning.prune_round(_dense(EXAMPLE), extra, p)
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in expected.items()}
    tiny = {A: np.array([0.1, 0.2])}
    with pytest.raises(UserError, match="allow_empty_tensors"):
        pruning.prune_round(_dense(tiny), tiny, dataclasses.replace(p, strategy="global", global_ranking="all",
                                                                  prune_fraction=0.99))
    with pytest.warns(UserWarning):
        out = pruning.prune_round(_dense(tiny), tiny, dataclasses.replace(p, global_ranking="all",
                                                                        prune_fraction=0.99),
                                  allow_empty_tensors=True)
    assert out[A].sum() == 0
