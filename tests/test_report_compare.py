"""lth_tf.report.compare on hand-made runs (no training): runs named by the settings they differ in, levels
and replicates in common, paired differences and the kept share per tensor group against hand values."""
import dataclasses
import json
import subprocess
import sys

import pytest

from lth_tf.config import PruneConfig
from lth_tf.errors import UserError
from lth_tf.report import compare
from test_faults import ROOT
from test_report import config, grid, make_run


def two_runs(tmp_path, lamp_levels=3):
    local = make_run(tmp_path / "local", config(levels=3), grid([[0.80, 0.81, 0.79, 0.70], [0.82, 0.83, 0.80, 0.72]]))
    lamp_cfg = dataclasses.replace(config(levels=3), prune=PruneConfig(levels=3, strategy="lamp"))
    lamp = make_run(tmp_path / "lamp", lamp_cfg,
                    grid([[0.80, 0.82, 0.81, 0.75][:lamp_levels + 1], [0.82, 0.84, 0.83, 0.76][:lamp_levels + 1],
                          [0.5, 0.5]]))
    return local, lamp


def test_runs_are_named_by_what_differs_and_differences_are_paired(tmp_path):
    local, lamp = two_runs(tmp_path, lamp_levels=2)
    result = compare.compare([local.path, lamp.path])
    assert [r["name"] for r in result["runs"]] == ["strategy=local", "strategy=lamp"]
    assert result["replicates"] == [0, 1]  # replicate 2 is lamp's alone
    assert [row["level"] for row in result["levels"]] == [0, 1, 2]  # level 3: local's alone
    level_2 = result["levels"][2]["runs"]
    assert level_2[1]["valid_accuracy"]["mean"] == pytest.approx((0.81 + 0.83) / 2)
    assert level_2[1]["valid_minus_first"]["mean"] == pytest.approx(((0.81 - 0.79) + (0.83 - 0.80)) / 2)
    assert level_2[1]["sparsity"] == pytest.approx(1 - 0.8 ** 2)
    text = compare.to_markdown(result)
    assert "| 2 | strategy=local |" in text and "+2.50 ±" in text


def test_one_replicate_gets_the_evaluation_sets_intervals_and_the_figure_draws_every_run(tmp_path):
    local, lamp = two_runs(tmp_path)
    result = compare.compare([local.path, lamp.path], replicates=[0])
    level_1 = result["levels"][1]["runs"]
    # data.json's 12,000 validation / 10,000 test examples: Wilson per accuracy, Newcombe for the difference
    assert level_1[1]["valid_accuracy"]["method"] == "wilson" and level_1[1]["test_accuracy"]["examples"] == 10_000
    diff = level_1[1]["valid_minus_first"]
    assert diff["method"] == "newcombe" and diff["low"] < 0.01 < diff["high"] and diff["mean"] == pytest.approx(0.01)
    assert "| +1.00 [+0.02, +1.98] |" in compare.to_markdown(result)  # 82% vs 81% on 12,000 reviews
    figure = compare.plots.comparison_plot(result, str(tmp_path / "cmp.png"))
    assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_kept_share_weights_tensors_by_size():
    record = {"sparsity_by_tensor": {"embedding/embeddings": 0.5, "conv3/kernel": 0.0, "conv3/bias": 1.0,
                                     "output/kernel": 0.25}}
    sizes = {"embedding/embeddings": 100, "conv3/kernel": 30, "conv3/bias": 10, "output/kernel": 4}
    assert compare.kept_by_group(record, sizes) == {"embedding": 0.5, "hidden": 0.75, "output": 0.75}


def test_mistakes_are_one_line(tmp_path):
    local, lamp = two_runs(tmp_path)
    with pytest.raises(UserError, match="two or more"):
        compare.compare([local.path])
    with pytest.raises(UserError, match=r"--replicates: \[2\] not finished by every run"):
        compare.compare([local.path, lamp.path], replicates=[0, 2])
    proc = subprocess.run([sys.executable, "-m", "lth_tf.report.compare", f"--run_dirs={local.path},{lamp.path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --out: where to write the comparison, e.g. --out=compare.md"
    out = tmp_path / "cmp.md"
    proc = subprocess.run([sys.executable, "-m", "lth_tf.report.compare", f"--run_dirs={local.path},{lamp.path}",
                           f"--out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.load(open(tmp_path / "cmp.json"))["replicates"] == [0, 1] and out.read_text().startswith("# ticket")
    assert open(tmp_path / "cmp.png", "rb").read(4) == b"\x89PNG" and "figure: " in proc.stdout
