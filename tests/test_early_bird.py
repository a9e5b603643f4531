"""Early-bird (lth_tf.lottery.early_bird, lth_tf.instruments.early_bird): the distance's arithmetic, the watch
inside training (0 for an unchanged model, a stop mid-epoch, a resume that replays the same checks), and the
embedded sample end to end: recording changes no number, the early_bird branch stops and its ticket is compared
with IMP's, a killed run resumes with the same checks, the BiLSTM with global pruning."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import results, run_dir, synthetic_batches
from lth_tf.config import ModelConfig, PruneConfig, TrainConfig
from lth_tf.lottery.early_bird import EarlyBird, below_in_a_row, draw, hamming
from lth_tf.nets.models import build_model
from lth_tf.rundir import TaskCheckpoints
from lth_tf.training import MaskedModel, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=300", "--embedding_dim=8", "--filters=4",
         "--levels=2", "--epochs=3", "--patience=0", "--branches=ticket,early_bird_ticket", "--early_bird_steps=10",
         "--early_bird_threshold=0.3", "--early_bird_patience=2", "--threads=1", "--progress=false"]


# ---------------------------------------------------------------------------------------- arithmetic ---
def test_hamming_is_the_fraction_of_prunable_positions_that_differ():
    alive = {"a": np.array([1, 1, 1, 1, 0, 0], bool), "b": np.array([[1, 1], [1, 1]], bool)}
    x = {"a": np.array([1, 1, 0, 0, 0, 0], bool), "b": np.array([[1, 0], [1, 1]], bool)}
    y = {"a": np.array([1, 0, 1, 0, 0, 0], bool), "b": np.array([[1, 1], [0, 1]], bool)}
    assert hamming(x, x, alive) == 0.0
    assert hamming(x, y, alive) == pytest.approx(4 / 8)  # a: positions 1, 2; b: (0,1), (1,0); of 8 alive
    assert hamming(x, y, {n: np.zeros_like(m) for n, m in alive.items()}) == 0.0


def test_the_criterion_counts_checks_below_the_threshold_in_a_row():
    checks = [{"distance": d} for d in (0.5, 0.05, 0.2, 0.05, 0.01, 0.09)]
    assert below_in_a_row(checks, 0.1) == 3 and below_in_a_row(checks[:3], 0.1) == 0 and below_in_a_row([], 0.1) == 0


@pytest.mark.parametrize("strategy,ranking", [("local", "all"), ("global", "all"), ("global", "no_embedding"),
                                              ("lamp", "all")])
def test_draw_uses_the_run_strategy_and_never_refuses(strategy, ranking):
    rng = np.random.default_rng(0)
    weights = {"embedding/embeddings": rng.normal(0, 1, (20, 4)), "conv3/kernel": rng.normal(0, 0.01, (3, 4, 2)),
               "output/bias": np.zeros(1)}
    masks = {n: np.ones(w.shape, bool) for n, w in weights.items()}
    cfg = PruneConfig(strategy=strategy, global_ranking=ranking, prune_fraction=0.5)
    drawn = draw(masks, weights, cfg)  # global/all empties conv3/kernel: a real round refuses, a check does not
    assert sum(int(m.sum()) for m in drawn.values()) == 105 - round(0.5 * 105) or strategy == "local"
    assert all(np.array_equal(drawn[n], draw(masks, weights, cfg)[n]) for n in masks)  # deterministic


# ------------------------------------------------------------------------------------ the watch in training ---
def _model(seed=0):
    return MaskedModel(build_model(ModelConfig(model="cnn", embedding_dim=8, filters=4), 300, 2, seed=seed,
                                   stateful_dropout=True), 2)  # resumable dropout, as format-2 runs build it


def test_distance_is_zero_for_an_unchanged_model_and_a_stopping_watch_ends_the_level_mid_epoch():
    mm = _model()
    watch = EarlyBird(PruneConfig(), every_steps=2, threshold=0.1, patience=3, stops=True)
    before = mm.snapshot()
    batches = synthetic_batches()  # 6 batches an epoch
    result = train(mm, batches, batches, TrainConfig(epochs=3, patience=0, learning_rate=0.0), seed=0,
                   progress=False, watch=watch)  # Adam with a learning rate of 0: the weights never move
    assert [c["distance"] for c in result.checks] == [0.0, 0.0, 0.0]
    assert [(c["step"], c["fired"]) for c in result.checks] == [(2, False), (4, False), (6, True)]
    assert result.watch_stopped and result.steps == 6 and result.epochs_trained == 1
    assert all(np.array_equal(before[n], w) for n, w in mm.snapshot().items())

    mm = _model()
    watch = EarlyBird(PruneConfig(), every_steps=4, threshold=0.1, patience=2, stops=True)
    result = train(mm, batches, batches, TrainConfig(epochs=3, patience=0, learning_rate=0.0), seed=0,
                   progress=False, watch=watch)
    assert [c["step"] for c in result.checks] == [4, 6] and result.steps == 6  # step 4, then the epoch's end


def test_a_level_resumed_from_its_checkpoint_replays_the_same_checks(tmp_path):
    batches = synthetic_batches()
    cfg = TrainConfig(epochs=4, patience=0, learning_rate=0.01)

    def watch():
        return EarlyBird(PruneConfig(), every_steps=4, threshold=0.3, patience=2, stops=False)

    clean = train(_model(), batches, batches, cfg, seed=3, progress=False, watch=watch(), epoch_seeded=True,
                  checkpoints=TaskCheckpoints(str(tmp_path / "clean")))

    def dies_in_epoch_3(epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return batches(epoch)

    checkpoints = TaskCheckpoints(str(tmp_path / "killed"))
    with pytest.raises(KeyboardInterrupt):
        train(_model(), dies_in_epoch_3, batches, cfg, seed=3, progress=False, watch=watch(), epoch_seeded=True,
              checkpoints=checkpoints)
    resumed = train(_model(), batches, batches, cfg, seed=3, progress=False, watch=watch(), epoch_seeded=True,
                    checkpoints=checkpoints)

    def without_time(checks):
        return [{k: v for k, v in c.items() if k != "seconds"} for c in checks]

    assert len(clean.checks) == 8 and max(c["distance"] for c in clean.checks) > 0  # it trained
    assert without_time(resumed.checks) == without_time(clean.checks)
    assert resumed.history[-1]["valid_loss"] == clean.history[-1]["valid_loss"]


# ------------------------------------------------------------------------------- the sample, end to end ---
def main_cli(out, cache, *extra, check=True, flags=SMALL):
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *flags, f"--output_dir={out}", f"--cache_dir={cache}",
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def report_cli(path, check=True):
    proc = subprocess.run([sys.executable, "-m", "lth_tf.instruments.early_bird", f"--run_dir={path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def metrics(path, key):
    with open(os.path.join(path, key, "metrics.json")) as f:
        return json.load(f)


def checks_of(path, key):
    return [{k: v for k, v in c.items() if k != "seconds"} for c in metrics(path, key)["early_bird"]["checks"]]


TASKS = ["r0/level_00/ticket", "r0/level_01/ticket", "r0/level_01/early_bird", "r0/level_01/early_bird_ticket",
         "r0/level_02/ticket", "r0/level_02/early_bird", "r0/level_02/early_bird_ticket"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run without and with --early_bird (the early_bird branch watches itself in both)."""
    root = tmp_path_factory.mktemp("early_bird")
    main_cli(root / "plain", root / "cache")
    main_cli(root / "watched", root / "cache", "--early_bird")
    return root


def test_recording_changes_no_number_and_not_the_run_name(runs):
    plain, watched = run_dir(runs / "plain"), run_dir(runs / "watched")
    assert os.path.basename(plain) == os.path.basename(watched)
    assert results(runs / "plain") == results(runs / "watched")
    assert "early_bird" not in metrics(plain, "r0/level_01/ticket")
    for key in TASKS:
        m = metrics(watched, key)
        steps = [c["step"] for c in m["early_bird"]["checks"]]
        assert steps == sorted(set(steps)) and all(s % 10 == 0 or s % 27 == 0 for s in steps), key
    assert [c["step"] for c in metrics(watched, "r0/level_00/ticket")["early_bird"]["checks"]] == \
           [10, 20, 27, 30, 40, 50, 54, 60, 70, 80, 81]  # every 10 steps and every epoch's end (27 steps)


def test_the_early_bird_branch_stops_and_is_compared_with_the_ticket(runs):
    path = run_dir(runs / "watched")
    for level in (1, 2):
        bird = metrics(path, f"r0/level_{level:02d}/early_bird")
        e = bird["early_bird"]
        assert e["stops"] and e["stopped"] and bird["steps"] == e["converged_step"] < 81
        assert bird["steps"] == e["checks"][-1]["step"] and e["checks"][-1]["fired"]
        full = metrics(path, f"r0/level_{level:02d}/early_bird_ticket")
        assert full["steps"] == 81 and not full["early_bird"]["stops"]
    with np.load(os.path.join(path, "r0/level_02/early_bird/mask.npz")) as a, \
            np.load(os.path.join(path, "r0/level_02/early_bird_ticket/mask.npz")) as b, \
            np.load(os.path.join(path, "r0/level_02/ticket/mask.npz")) as t:
        assert all(np.array_equal(a[n], b[n]) for n in a.files)  # early_bird_ticket trains the early-bird mask
        assert not all(np.array_equal(a[n], t[n]) for n in a.files)  # drawn from other weights than IMP's
        assert all(a[n].sum() == t[n].sum() for n in a.files)  # at the same sparsity
    report_cli(path)
    with open(os.path.join(path, "early_bird", "early_bird.json")) as f:
        report = json.load(f)
    rows = {c["level"]: c for c in report["comparison"]}
    assert rows[1]["saved"] == 0.0 and rows[1]["ticket_steps"] == rows[1]["early_bird_steps"] == 162
    assert rows[2]["ticket_steps"] == 243 and rows[2]["early_bird_steps"] == 162 + metrics(
        path, "r0/level_01/early_bird")["steps"] and rows[2]["saved"] > 0
    level0 = next(t for t in report["tasks"] if (t["branch"], t["level"]) == ("ticket", 0))
    assert len(level0["curve"]) == 11 and level0["overhead"] < 0.2
    text = open(os.path.join(path, "early_bird", "early_bird.md")).read()
    assert "Early-bird ticket vs IMP ticket" in text and os.path.getsize(os.path.join(path, "early_bird",
                                                                                     "early_bird.png")) > 1000


def test_the_report_says_when_nothing_was_recorded(tmp_path):
    main_cli(tmp_path / "out", tmp_path / "cache", flags=SMALL[:7] + ["--levels=0", "--progress=false"])
    proc = report_cli(run_dir(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "no finished task recorded early-bird checks" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_killed_run_resumes_with_the_same_checks(runs, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lth_tf.main", *SMALL, f"--output_dir={out}", f"--cache_dir={runs / 'cache'}",
           "--early_bird"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, killed_in = time.time() + 300, None
    while time.time() < deadline and proc.poll() is None:  # kill inside level 1's ticket, after a checkpoint
        names = os.listdir(out) if os.path.isdir(out) else []
        checkpoint = os.path.join(out, names[0], "r0/level_01/ticket/checkpoint") if names else ""
        if checkpoint and os.path.isdir(checkpoint):
            proc.send_signal(signal.SIGKILL)
            killed_in = checkpoint
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_in, "the run ended before a checkpoint of level 1 was seen"
    resumed = main_cli(out, runs / "cache", "--early_bird")
    assert "resuming after epoch" in resumed.stdout + resumed.stderr
    assert results(out) == results(runs / "watched")
    for key in TASKS:
        assert checks_of(run_dir(out), key) == checks_of(run_dir(runs / "watched"), key), key


def test_bilstm_with_global_pruning(tmp_path):
    flags = ["--dataset=imdb_sample", "--model=lstm", "--vocab_size=300", "--embedding_dim=8", "--hidden=4",
             "--max_len=64", "--levels=1", "--epochs=2", "--patience=0", "--strategy=global",
             "--global_ranking=no_embedding", "--branches=ticket,early_bird_ticket", "--early_bird", "--early_bird_threshold=0.5",
             "--early_bird_patience=1", "--threads=1", "--progress=false"]
    main_cli(tmp_path / "out", tmp_path / "cache", flags=flags)
    (name,) = os.listdir(tmp_path / "out")
    path = str(tmp_path / "out" / name)
    bird = metrics(path, "r0/level_01/early_bird")
    assert bird["early_bird"]["stopped"] and bird["steps"] == 27  # fired at the first check, the epoch's end
    assert [c["step"] for c in metrics(path, "r0/level_00/ticket")["early_bird"]["checks"]] == [27, 54]
    report_cli(path)
    assert os.path.exists(os.path.join(path, "early_bird", "early_bird.md"))
