import numpy as np
import pytest

from lth_tf.errors import UserError
from lth_tf.sparsity.masks import dense_masks, load_masks, save_masks, sparsity_report, validate_masks
from lth_tf.sparsity.pruning import prune, prune_global, prune_local, random_masks_like


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"emb": rng.normal(size=(500, 20)), "kernel": rng.normal(size=(37, 11)),
            "bias": np.zeros(7), "one": np.array([0.5])}


def _alive_after(rounds, n=None, fraction=0.2):
    alive = n
    for _ in range(rounds):
        alive -= int(round(fraction * alive))
    return alive


@pytest.mark.parametrize("rounds", [1, 2, 20])
def test_local_counts_are_exact(rounds):
    w = _weights()
    masks = dense_masks({k: v.shape for k, v in w.items()})
    for _ in range(rounds):
        masks = prune_local(masks, w, 0.2)
    for name, m in masks.items():
        assert m.sum() == _alive_after(rounds, w[name].size), name
    # 20 rounds of 20%: 0.8**20 = 1.15% of the big tensor survives (98.85% pruned), within rounding
    assert abs(masks["emb"].mean() - 0.8 ** 20) < 0.0005 if rounds == 20 else True


@pytest.mark.parametrize("rounds", [1, 2, 20])
def test_global_counts_are_exact(rounds):
    w = _weights()
    masks = dense_masks({k: v.shape for k, v in w.items()})
    total = sum(v.size for v in w.values())
    for _ in range(rounds):
        masks = prune_global(masks, w, 0.2)
    assert sum(int(m.sum()) for m in masks.values()) == _alive_after(rounds, total)


def test_local_prunes_smallest_survivors_and_never_revives():
    w = {"a": np.array([0.1, -5.0, 0.3, 2.0, -0.2, 1.0, 0.05, 3.0, -0.4, 0.6])}
    m1 = prune_local({"a": np.ones(10, bool)}, w, 0.2)
    assert list(np.flatnonzero(~m1["a"])) == [0, 6]
    # next round ranks survivors only, even if a pruned weight would now look large
    w2 = {"a": w["a"].copy()}
    w2["a"][0] = 100.0
    m2 = prune_local(m1, w2, 0.25)
    assert not m2["a"][0] and (m2["a"] <= m1["a"]).all() and m2["a"].sum() == 6


def test_ties_broken_by_position_not_threshold():
    w = {"bias": np.zeros(10)}
    m = prune_local({"bias": np.ones(10, bool)}, w, 0.2)
    assert list(np.flatnonzero(~m["bias"])) == [0, 1]  # exactly 2, not all ten tied zeros


def test_tiny_tensors():
    w = {"one": np.array([1.0]), "none": np.array([2.0, 3.0])}
    m = {"one": np.ones(1, bool), "none": np.zeros(2, bool)}
    for strategy in ("local", "global"):
        out = prune(m, w, 0.2, strategy)
        assert out["one"].sum() == 1 and out["none"].sum() == 0


def test_global_uses_one_threshold():
    w = {"small": np.full(10, 0.01), "large": np.full(10, 10.0)}
    m = prune_global(dense_masks({"small": (10,), "large": (10,)}), w, 0.5)
    assert m["small"].sum() == 0 and m["large"].sum() == 10


def test_deterministic_and_bad_fraction():
    w = _weights(1)
    masks = dense_masks({k: v.shape for k, v in w.items()})
    a, b = prune_global(masks, w, 0.3), prune_global(masks, w, 0.3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(UserError, match="prune_fraction"):
            prune_local(masks, w, bad)


def test_random_masks_keep_per_tensor_counts():
    w = _weights()
    masks = prune_local(dense_masks({k: v.shape for k, v in w.items()}), w, 0.5)
    r = random_masks_like(masks, seed=3)
    assert all(r[k].sum() == masks[k].sum() for k in masks)
    assert not np.array_equal(r["emb"], masks["emb"])
    assert all(np.array_equal(r[k], random_masks_like(masks, seed=3)[k]) for k in r)


def test_masks_npz_roundtrip_validation_and_report(tmp_path):
    w = _weights()
    masks = prune_local(dense_masks({k: v.shape for k, v in w.items()}), w, 0.2)
    path = str(tmp_path / "mask.npz")
    save_masks(path, masks)
    loaded = load_masks(path)
    assert all(np.array_equal(loaded[k], masks[k]) for k in masks)
    shapes = {k: v.shape for k, v in w.items()}
    validate_masks(loaded, shapes)
    with pytest.raises(UserError, match="missing"):
        validate_masks({k: v for k, v in loaded.items() if k != "bias"}, shapes)
    with pytest.raises(UserError, match="shape"):
        validate_masks({**loaded, "bias": np.ones(3, bool)}, shapes)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(UserError, match="bad.npz"):
        load_masks(str(tmp_path / "bad.npz"))
    report = sparsity_report({"embedding/embeddings": np.array([True, False, False, False]),
                              "conv3/kernel": np.array([True, True, False, True])})
    assert report["overall"]["sparsity"] == pytest.approx(0.5)
    assert report["without_embedding"]["sparsity"] == pytest.approx(0.25)
    assert report["tensors"]["embedding/embeddings"]["sparsity"] == pytest.approx(0.75)
