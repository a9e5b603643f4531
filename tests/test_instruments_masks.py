"""Mask analysis (lth_tf.instruments): the closed forms against simulation, and the analysis of small fake runs
with known overlaps, consecutive levels, embedding rows, filters and gates; the command end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lth_tf.config import ModelConfig, RunConfig
from lth_tf.instruments import masks as mask_analysis
from lth_tf.instruments import overlap as ov
from lth_tf.rundir import RunDir, Task
from lth_tf.sparsity.pruning import random_masks_like

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = ["<pad>", "<unk>", "the", "film", "good", "bad", "plot", "actor", "zebra", "quixotic"]


class FakeData:
    def __init__(self, vocab):
        self.vocab, self.class_names, self.num_classes, self.stats = vocab, ["neg", "pos"], 2, {}


def make_run(path, tasks: dict, cfg: RunConfig = RunConfig(), vocab=VOCAB) -> RunDir:
    run = RunDir(str(path))
    run.create()
    run.write_config(cfg, "f" * 16)
    run.write_data(FakeData(vocab), "f" * 16)
    for task, masks in tasks.items():
        run.write_masks(task, masks)
        run.write_metrics(task, {"valid_accuracy": 0.5})
    return run


# ---------------------------------------------------------------------------------------- closed forms ---
def test_expected_intersection_and_variance_match_simulation():
    rng = np.random.default_rng(0)
    n, k1, k2, trials = 200, 60, 90, 4000
    inter = np.empty(trials)
    for t in range(trials):
        a = np.zeros(n, bool)
        a[rng.permutation(n)[:k1]] = True
        b = np.zeros(n, bool)
        b[rng.permutation(n)[:k2]] = True
        inter[t] = np.count_nonzero(a & b)
    assert ov.expected_intersection(n, k1, k2) == 27.0  # k1 k2 / n
    assert inter.mean() == pytest.approx(27.0, abs=0.15)
    assert inter.var() == pytest.approx(ov.intersection_variance(n, k1, k2), rel=0.08)


def test_describe_known_cases():
    a = np.zeros(60, bool)
    a[:30] = True
    b = np.zeros(60, bool)
    b[15:45] = True
    d = ov.describe(ov.pair_counts(a, b))  # 15 shared of 30; random: 30 * 30 / 60 = 15
    assert (d["intersection"], d["expected"], d["shared"], d["shared_random"]) == (15, 15.0, 0.5, 0.5)
    assert d["above_chance"] == 0.0 and d["jaccard"] == pytest.approx(1 / 3) and d["z"] == 0.0
    same = ov.describe(ov.pair_counts(a, a))
    assert same["shared"] == 1.0 and same["above_chance"] == 1.0 and same["shared_random"] == 0.5
    disjoint = ov.describe(ov.pair_counts(a, ~a))
    assert disjoint["shared"] == 0.0 and disjoint["above_chance"] == pytest.approx(-15 / 15)
    empty = ov.describe(ov.pair_counts(np.zeros(4, bool), a[:4]))
    assert empty["shared"] is None and empty["jaccard"] == 0.0
    c = ov.describe_consecutive(ov.pair_counts(a, a & (np.arange(60) < 24)))
    assert (c["kept"], c["nested"], c["kept_random"], c["nested_random"]) == (0.8, 1.0, 0.4, 0.5)


def test_survival_helpers():
    assert ov.row_survival(np.array([[1, 1], [1, 0], [0, 0]], bool)).tolist() == [1.0, 0.5, 0.0]
    bins = ov.log2_bins(np.array([1.0, 0.8, 0.6, 0.5, 0.5, 0.25, 0.0, 0.0]))
    assert [(b["rank_low"], b["rank_high"], b["rows"]) for b in bins] == [(1, 1, 1), (2, 3, 2), (4, 7, 4), (8, 8, 1)]
    assert bins[1]["mean"] == pytest.approx(0.7) and bins[2]["mean"] == pytest.approx(0.3125)
    k = np.zeros((3, 4, 5), bool)
    k[..., 0] = True
    k[0, :, 1] = True
    assert ov.filter_survival(k).tolist() == [1.0, 4 / 12, 0.0, 0.0, 0.0]
    g = np.zeros((3, 8), bool)
    g[:, 0:2] = True  # i
    g[0, 4:6] = True  # c, a third
    g[:, 6:8] = True  # o
    assert ov.gate_survival(g) == pytest.approx({"i": 1.0, "f": 0.0, "c": 1 / 3, "o": 1.0})
    assert ov.random_group_sd(100, 100, 10) == 0.0 and ov.random_group_sd(100, 50, 10) > 0


# ------------------------------------------------------------------------------------------ a CNN run ---
def conv_mask(rows_per_filter):
    """A (3, 4, 5) conv kernel mask: filter f alive in the (width, input) rows rows_per_filter[f] (of 12)."""
    m = np.zeros((12, 5), bool)
    for f, rows in enumerate(rows_per_filter):
        m[list(rows), f] = True
    return m.reshape(3, 4, 5)


def embedding_mask(cols_per_row):
    m = np.zeros((10, 4), bool)
    for row, cols in enumerate(cols_per_row):
        m[row, :cols] = True
    return m


def cnn_tasks():
    dense = {"embedding/embeddings": np.ones((10, 4), bool), "conv3/kernel": np.ones((3, 4, 5), bool),
             "conv3/bias": np.ones(5, bool), "output/kernel": np.ones((5, 1), bool)}
    emb1 = embedding_mask([0, 2, 4, 4, 3, 2, 2, 1, 0, 0])  # <pad>, <unk>, then words by frequency
    emb2 = embedding_mask([0, 0, 4, 3, 2, 1, 0, 0, 0, 0])
    bias = np.array([1, 1, 1, 0, 0], bool)
    level1 = {0: {"embedding/embeddings": emb1, "conv3/kernel": conv_mask([range(0, 6)] * 5),  # flat 0..29
                  "conv3/bias": bias, "output/kernel": np.array([[1], [1], [0], [0], [0]], bool)},
              1: {"embedding/embeddings": emb1, "conv3/kernel": conv_mask([range(3, 9)] * 5),  # flat 15..44
                  "conv3/bias": bias, "output/kernel": np.array([[0], [0], [0], [1], [1]], bool)}}
    level2 = {r: {"embedding/embeddings": emb2,
                  "conv3/kernel": conv_mask([range(s, s + 6), range(s, s + 4), range(s, s + 2), range(s, s + 2), []]),
                  "conv3/bias": np.array([1, 1, 0, 0, 0], bool), "output/kernel": level1[r]["output/kernel"][:]}
              for r, s in ((0, 0), (1, 3))}
    tasks = {}
    for r in (0, 1):
        tasks[Task(r, 0, "ticket")] = dense
        tasks[Task(r, 1, "ticket")] = level1[r]
        tasks[Task(r, 2, "ticket")] = level2[r]
        tasks[Task(r, 1, "reinit")] = level1[r]  # the ticket's mask, borrowed
        tasks[Task(r, 1, "random_mask")] = random_masks_like(level1[r], seed=r)
        tasks[Task(r, 2, "random_mask")] = random_masks_like(level2[r], seed=10 + r)
    return tasks


def test_cnn_run_overlap_consecutive_embedding_filters(tmp_path):
    run = make_run(tmp_path / "run", cnn_tasks())
    result = mask_analysis.analyse(run, log=lambda m: None)
    assert result["branches"] == ["ticket", "reinit", "random_mask"] and result["shown_levels"] == [1, 2]

    o = result["replicate_overlap"]["ticket"]["1"]
    t = o["tensors"]
    assert o["pairs"] == 1
    assert (t["conv3/kernel"]["shared"], t["conv3/kernel"]["shared_random"], t["conv3/kernel"]["above_chance"]) \
        == (0.5, 0.5, 0.0)
    assert t["conv3/bias"]["shared"] == 1.0 and t["conv3/bias"]["shared_random"] == pytest.approx(0.6)
    assert t["conv3/bias"]["above_chance"] == pytest.approx(1.0)
    assert t["output/kernel"]["shared"] == 0.0 and t["output/kernel"]["above_chance"] == pytest.approx(-2 / 3)
    assert t["embedding/embeddings"]["shared"] == 1.0 and t["embedding/embeddings"]["expected"] == pytest.approx(8.1)
    # totals: random masks of the same PER-TENSOR sparsity: E = 8.1 + 15 + 1.8 + 0.8, not 53 * 53 / 110
    assert o["overall"]["expected"] == pytest.approx(25.7)
    assert o["overall"]["shared"] == pytest.approx(36 / 53)
    assert o["overall"]["shared_random"] == pytest.approx(25.7 / 53)
    assert o["without_embedding"]["shared"] == pytest.approx(18 / 35)
    assert o["without_embedding"]["expected"] == pytest.approx(17.6)
    level0 = result["replicate_overlap"]["ticket"]["0"]["overall"]
    assert level0["shared"] == 1.0 and level0["above_chance"] is None  # dense: nothing to compare

    c = result["consecutive"]["ticket"]["2"]
    assert c["from"] == 1 and c["pairs"] == 2
    assert c["tensors"]["conv3/kernel"]["kept"] == pytest.approx(14 / 30)
    assert c["tensors"]["conv3/kernel"]["nested"] == 1.0 and c["overall"]["nested"] == 1.0
    assert c["tensors"]["conv3/kernel"]["kept_random"] == pytest.approx(14 / 60)
    assert c["tensors"]["embedding/embeddings"]["kept"] == pytest.approx(10 / 18)
    assert result["consecutive"]["random_mask"]["2"]["overall"]["nested"] < 1.0  # a fresh draw each level

    pair = result["branch_overlap"]["ticket|reinit"]["1"]
    assert pair["overall"]["shared"] == 1.0 and pair["pairs"] == 2
    assert "ticket|random_mask" in result["branch_overlap"]

    e = result["embedding"]["ticket"]["1"]
    assert e["density"] == pytest.approx(18 / 40) and e["pad"] == 0.0 and e["unk"] == 0.5
    assert [w["token"] for w in e["most"][:3]] == ["the", "film", "good"] and e["most"][0]["rank"] == 1
    assert [w["token"] for w in e["fewest"][:3]] == ["zebra", "quixotic", "actor"]  # ties: more frequent first
    assert e["dead_rows"] == 2 and e["full_rows"] == 2 and e["ties"]["fewest"] == 2
    assert e["spearman_rank"] < -0.9  # frequent words keep more
    assert [b["mean"] for b in e["bins"]] == pytest.approx([1.0, 0.875, 0.3125, 0.0])

    f = result["filters"]["ticket"]["2"]["conv3/kernel"]
    assert f["filters"] == 5 and f["weights_per_filter"] == 12 and f["dead"] == 1.0
    assert f["sorted_mean"] == pytest.approx([0.5, 4 / 12, 2 / 12, 2 / 12, 0.0])
    assert f["mean"] == pytest.approx(14 / 60) and f["sd"] > f["random_sd"] > 0
    assert result["gates"] == {}

    written = mask_analysis.write(result, str(tmp_path / "out"))
    for key in ("markdown", "json", "overlap", "embedding", "filters"):
        assert os.path.getsize(written[key]) > 0, key
    text = open(written["markdown"]).read()
    assert "## Replicate overlap" in text and "## Embedding survival by word frequency" in text
    assert "`zebra` 0 [7]" in text and "## CNN: survival per filter" in text and "LSTM" not in text
    assert json.load(open(written["json"]))["replicate_overlap"]["ticket"]["1"]["overall"]["expected"] \
        == pytest.approx(25.7)


def test_random_control_is_nested_only_by_chance(tmp_path):
    rng = np.random.default_rng(5)
    shape = (100, 100)
    tasks = {}
    for r in (0, 1):
        m1 = np.zeros(shape, bool).ravel()
        m1[rng.permutation(m1.size)[:5000]] = True
        tasks[Task(r, 1, "random_mask")] = {"conv3/kernel": m1.reshape(shape)}
        m2 = np.zeros(m1.size, bool)
        m2[rng.permutation(m1.size)[:4000]] = True
        tasks[Task(r, 2, "random_mask")] = {"conv3/kernel": m2.reshape(shape)}
    run = make_run(tmp_path / "run", tasks)
    result = mask_analysis.analyse(run, log=lambda m: None)
    c = result["consecutive"]["random_mask"]["2"]["overall"]
    assert c["nested_random"] == 0.5 and c["nested"] == pytest.approx(0.5, abs=0.03)
    assert c["kept_random"] == 0.4 and c["kept"] == pytest.approx(0.4, abs=0.03)
    o = result["replicate_overlap"]["random_mask"]["1"]["overall"]
    assert o["shared"] == pytest.approx(o["shared_random"], abs=0.03) and abs(o["z"]) < 4


# ----------------------------------------------------------------------------------------- an LSTM run ---
def test_lstm_gates(tmp_path):
    hidden = 2
    k = np.zeros((3, 4 * hidden), bool)
    k[:, 0:2] = True  # i: all
    k[:, 4:6] = True  # c: all; f none
    k[0, 6:8] = True  # o: a third
    rk = np.ones((hidden, 4 * hidden), bool)
    rk[:, 2:4] = False  # f pruned
    masks = {"bilstm1/forward/kernel": k, "bilstm1/forward/recurrent_kernel": rk,
             "bilstm1/forward/bias": np.ones(4 * hidden, bool), "output/kernel": np.ones((4, 1), bool)}
    run = make_run(tmp_path / "run", {Task(0, 1, "ticket"): masks}, RunConfig(model=ModelConfig(model="lstm")))
    result = mask_analysis.analyse(run, log=lambda m: None)
    g = result["gates"]["ticket"]["1"]
    assert g["bilstm1/forward/kernel"] == pytest.approx({"i": 1.0, "f": 0.0, "c": 1.0, "o": 1 / 3, "density": 7 / 12})
    assert g["bilstm1/forward/recurrent_kernel"]["f"] == 0.0 and g["bilstm1/forward/recurrent_kernel"]["o"] == 1.0
    assert set(g) == {"bilstm1/forward/kernel", "bilstm1/forward/recurrent_kernel", "bilstm1/forward/bias"}
    assert result["filters"] == {} and result["embedding"] == {} and result["replicate_overlap"] == {}
    written = mask_analysis.write(result, str(tmp_path / "out"))
    assert os.path.getsize(written["gates"]) > 0
    text = open(written["markdown"]).read()
    assert "## LSTM: survival per gate" in text and "The embedding is not pruned" in text
    assert "Needs 2 or more replicates" in text


# -------------------------------------------------------------------------------------------- command ---
def _command(*args):
    code = ("import sys\nfrom lth_tf.instruments import masks\nsys.argv = ['masks', *sys.argv[1:]]\n"
            "code = 0\ntry:\n    masks.run()\nexcept SystemExit as e:\n    code = e.code\n"
            "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow')\nsys.exit(code)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def test_command_writes_the_section_without_tensorflow(tmp_path):
    run = make_run(tmp_path / "run", cnn_tasks())
    p = _command(f"--run_dir={run.path}", "--mask_levels=1", "--top_words=3")
    assert p.returncode == 0, p.stderr
    assert "no tensorflow" in p.stdout and "mask analysis of" in p.stdout
    out = os.path.join(run.path, "mask_analysis")
    assert sorted(os.listdir(out)) == sorted([mask_analysis.MARKDOWN, mask_analysis.JSON, mask_analysis.OVERLAP_PLOT,
                                              mask_analysis.EMBEDDING_PLOT, mask_analysis.FILTER_PLOT])
    data = json.load(open(os.path.join(out, mask_analysis.JSON)))
    assert data["shown_levels"] == [1] and len(data["embedding"]["ticket"]["1"]["most"]) == 3
    p = _command(f"--run_dir={run.path}", f"--out={tmp_path / 'elsewhere'}", "--mask_branches=ticket")
    assert p.returncode == 0, p.stderr
    assert json.load(open(tmp_path / "elsewhere" / mask_analysis.JSON))["branches"] == ["ticket"]


def test_command_errors(tmp_path):
    empty = make_run(tmp_path / "empty", {})
    p = _command(f"--run_dir={empty.path}")
    assert p.returncode == 2 and "no finished task" in p.stderr
    p = _command(f"--run_dir={tmp_path / 'nowhere'}")
    assert p.returncode == 2 and "no such directory" in p.stderr
    run = make_run(tmp_path / "run", cnn_tasks())
    p = _command(f"--run_dir={run.path}", "--mask_levels=7")
    assert p.returncode == 2 and "--mask_levels: no finished task at level 7" in p.stderr
