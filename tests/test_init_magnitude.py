"""lth_tf.instruments.init_magnitude: the share of a ticket that θ0's magnitudes alone decide."""
import json
import os
import subprocess
import sys

import numpy as np

from helpers import run_dir
from lth_tf.instruments import init_magnitude
from lth_tf.sparsity.pruning import prune_local
from test_faults import ROOT


def test_agreement_against_hand_values():
    ticket = {"a": np.array([1, 1, 0, 0], bool), "b": np.array([1, 0, 1, 1], bool)}
    predicted = {"a": np.array([1, 0, 1, 0], bool), "b": np.array([1, 1, 1, 1], bool)}
    out = init_magnitude.agreement(ticket, predicted)
    assert out["a"] == {"alive": 2, "size": 4, "shared": 0.5, "chance": 0.5}
    assert out["b"] == {"alive": 3, "size": 4, "shared": 1.0, "chance": 1.0}


def test_init_masks_are_repeated_rounds_on_theta0():
    rng = np.random.default_rng(0)
    theta0 = {"w": rng.normal(size=50)}
    start = {"w": np.ones(50, bool)}
    masks = init_magnitude.init_magnitude_masks(start, theta0, 3, lambda m, w: prune_local(m, w, 0.2))
    assert [int(masks[lvl]["w"].sum()) for lvl in (1, 2, 3)] == [40, 32, 26]
    order = np.argsort(np.abs(theta0["w"]), kind="stable")
    assert not masks[3]["w"][order[:24]].any() and masks[3]["w"][order[24:]].all()


def test_a_run_that_never_moves_its_weights_is_decided_by_theta0_alone(tmp_path):
    """Adam at 1e-12 changes no float32 weight that is not 0, so the tickets are θ0's magnitude masks."""
    out = tmp_path / "out"
    train = subprocess.run([sys.executable, "-m", "lth_tf.main", "--dataset=imdb_sample", "--model=cnn",
                            "--vocab_size=300", "--embedding_dim=8", "--filters=4", "--levels=2", "--epochs=1",
                            "--branches=ticket", "--learning_rate=1e-12", "--progress=false",
                            f"--output_dir={out}", f"--cache_dir={tmp_path / 'cache'}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "lth_tf.instruments.init_magnitude", f"--run_dir={run_dir(out)}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(os.path.join(run_dir(out), "init_magnitude", "init_magnitude_r0.json")))
    for level in ("1", "2"):
        for name, cell in result["levels"][level].items():
            if name.endswith(("kernel", "embeddings")):  # biases start at 0: their ties move
                assert cell["shared"] == 1.0, (level, name, cell)
    assert "| embedding/embeddings | 1.000" in open(os.path.join(run_dir(out), "init_magnitude",
                                                                 "init_magnitude_r0.md")).read()
    bad = subprocess.run([sys.executable, "-m", "lth_tf.instruments.init_magnitude", f"--run_dir={run_dir(out)}",
                          "--replicate=3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --replicate=3") and "Traceback" not in bad.stderr
