"""Instability analysis (lth_tf.lottery.spawn_tasks, lth_tf.lottery.spawn, lth_tf.instruments.instability) on the
embedded sample: the path's end points are the copies, identical copies give 0, the rewind points replay level
0 bit for bit, a killed analysis resumes to the same numbers, a Ray worker runs its tasks, the BiLSTM, and
one-line errors."""
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import run_dir
from lth_tf.lottery import interpolation, spawn_tasks
from lth_tf.lottery.tasks import dependencies
from lth_tf.rundir import RunDir, Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=300", "--embedding_dim=8", "--filters=4", "--levels=1",
        "--epochs=2", "--patience=1", "--branches=ticket", "--late_rewind", "--rewind_step=1ep", "--threads=1",
        "--progress=false"]
ANALYSIS = ["--level=1", "--rewind_steps=0it,10it,1ep", "--points=3", "--progress=false"]


# ---------------------------------------------------------------------------------------- arithmetic ---
def test_the_path_ends_are_the_two_weight_sets_bit_for_bit():
    rng = np.random.default_rng(0)
    a = {"k": rng.normal(size=(5, 3)).astype(np.float32), "b": np.array([0.0, -0.0, 1e-30], np.float32)}
    b = {"k": rng.normal(size=(5, 3)).astype(np.float32), "b": np.array([-2.0, 0.0, 3.0], np.float32)}
    assert interpolation.alphas(3) == [0.0, 0.5, 1.0] and len(interpolation.alphas(11)) == 11
    for alpha, end in ((0.0, a), (1.0, b)):
        w = interpolation.interpolate(a, b, alpha)
        assert all(w[n].dtype == np.float32 and np.array_equal(w[n], end[n]) for n in a)
    assert np.allclose(interpolation.interpolate(a, b, 0.5)["b"], [-1.0, 0.0, 1.5])
    assert interpolation.barrier([0.10, 0.30, 0.20]) == pytest.approx(0.15)
    assert interpolation.barrier([0.2, 0.2, 0.2]) == 0.0 and interpolation.barrier([0.3, 0.1, 0.3]) == 0.0


def test_task_names_and_graph():
    tasks = spawn_tasks.plan([0, 1], 5, [0, 110], 11, identical=False)
    assert len(tasks) == 2 * (2 + 2 * 3)
    copy_b = spawn_tasks.copy(1, 5, 110, "b")
    assert copy_b.key == "r1/level_05/instability/110it/copy_b" and copy_b in tasks
    assert spawn_tasks.parse(copy_b) == spawn_tasks.Spawned("copy", 1, 5, 110, copy="b")
    assert dependencies(copy_b) == [Task(1, 5, "ticket"), spawn_tasks.rewind_point(1, 110)]
    path = spawn_tasks.path(0, 5, 0, ("a", "a2"), 11)
    assert path.key == "r0/level_05/instability/0it/path_a_a2_11pt"
    assert dependencies(path) == [spawn_tasks.copy(0, 5, 0, "a"), spawn_tasks.copy(0, 5, 0, "a2")]
    assert spawn_tasks.parse(spawn_tasks.copy(0, 5, 0, "a2")).seed_copy == "a"
    assert dependencies(spawn_tasks.rewind_point(0, 110)) == [] and not spawn_tasks.is_spawned(Task(0, 1, "ticket"))
    for task in tasks:  # every task comes after what it needs
        assert all(tasks.index(d) < tasks.index(task) for d in dependencies(task) if d in tasks)


# ------------------------------------------------------------------------------- the sample, end to end ---
def cli(module, args, check=True):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def analysis(path, *extra, check=True):
    return cli("lth_tf.instruments.instability", [f"--run_dir={path}", *ANALYSIS, *extra], check=check)


def read(path, key):
    with open(os.path.join(path, key, "metrics.json")) as f:
        return json.load(f)


def report(path, level=1):
    with open(os.path.join(path, f"instability_level_{level:02d}", "instability.json")) as f:
        return json.load(f)


def numbers(result):
    """The report's numbers per step (what must not change with how the analysis ran)."""
    return result["steps"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny late-rewind (1ep) CNN run to level 1, a pristine copy of it, then the analysis on the first."""
    root = tmp_path_factory.mktemp("instability")
    cli("lth_tf.main", TINY + [f"--output_dir={root / 'out'}", f"--cache_dir={root / 'cache'}"])
    path = run_dir(root / "out")
    shutil.copytree(path, root / "pristine" / os.path.basename(path))
    analysis(path)
    return {"path": path, "pristine": run_dir(root / "pristine"), "result": report(path)}


def test_the_path_reproduces_the_copies_and_the_rewind_point_replays_level_0(runs):
    path = runs["path"]
    for n in (0, 10, 27):  # 1ep = 27 steps on the sample
        ends = read(path, f"r0/level_01/instability/{n}it/path_a_b_3pt")["path"]
        for i, copy in ((0, "a"), (-1, "b")):
            m = read(path, f"r0/level_01/instability/{n}it/copy_{copy}")
            assert ends["valid_loss"][i] == m["valid_loss"] and ends["valid_accuracy"][i] == m["valid_accuracy"]
    with np.load(os.path.join(path, "r0", "rewind.npz")) as rewind, \
            np.load(os.path.join(path, "r0/level_00/instability/rewind_27it/weights.npz")) as replayed:
        assert sorted(rewind.files) == sorted(replayed.files)
        assert all(np.array_equal(rewind[n], replayed[n]) for n in rewind.files)  # the run's own rewind point
    with np.load(os.path.join(path, "r0/level_01/ticket/mask.npz")) as mask, \
            np.load(os.path.join(path, "r0/level_01/instability/10it/copy_a/weights.npz")) as w:
        assert all(np.all(w[n][~mask[n]] == 0) for n in mask.files)  # trained under the level's mask
    a, b = (read(path, f"r0/level_01/instability/27it/copy_{c}") for c in "ab")
    assert a["seed"] != b["seed"] and a["valid_loss"] != b["valid_loss"]  # different order and dropout


def test_the_report_recommends_the_earliest_stable_step(runs):
    result = runs["result"]
    assert [(r["step"], r["iteration"]) for r in result["steps"]] == [("0it", 0), ("10it", 10), ("1ep", 27)]
    for row in result["steps"]:
        (rep,) = row["replicates"]
        errors = [100 * e for e in rep["path"]["valid_error"]]
        assert rep["instability"] == pytest.approx(max(errors) - (errors[0] + errors[-1]) / 2)
        assert row["stable"] == (row["instability"] < 2.0)
    stable = [r["step"] for r in result["steps"] if r["stable"]]
    assert result["recommended"] == (stable[0] if stable else None)
    folder = os.path.join(runs["path"], "instability_level_01")
    assert "Recommended rewind step" in open(os.path.join(folder, "instability.md")).read() or not stable
    assert os.path.getsize(os.path.join(folder, "instability.png")) > 1000
    finished = list(RunDir(runs["path"]).finished())
    assert finished == [Task(0, 0, "ticket"), Task(0, 1, "ticket")]  # the analysis's tasks are no branch


def test_a_rerun_trains_nothing(runs):
    proc = analysis(runs["path"])
    assert "12 tasks in 1 run(s), 12 already done" in proc.stdout and "training ..." not in proc.stdout


def test_identical_copies_have_zero_instability(runs, tmp_path):
    proc = analysis(runs["path"], "--rewind_steps=1ep", "--identical_copies", f"--out={tmp_path}")
    assert "4 tasks in 1 run(s), 2 already done" in proc.stdout  # its rewind point and copy a are shared
    with open(tmp_path / "instability.json") as f:
        (row,) = json.load(f)["steps"]
    assert row["instability"] == 0.0 and row["loss_barrier"] == 0.0
    (rep,) = row["replicates"]
    assert len(set(rep["path"]["valid_loss"])) == 1
    with np.load(os.path.join(runs["path"], "r0/level_01/instability/27it/copy_a/weights.npz")) as a, \
            np.load(os.path.join(runs["path"], "r0/level_01/instability/27it/copy_a2/weights.npz")) as a2:
        assert all(np.array_equal(a[n], a2[n]) for n in a.files)


def test_a_killed_analysis_resumes_to_the_same_numbers(runs):
    path = runs["pristine"]
    cmd = [sys.executable, "-m", "lth_tf.instruments.instability", f"--run_dir={path}", *ANALYSIS]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = os.path.join(path, "r0/level_01/instability/10it/copy_a/metrics.json")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not os.path.exists(done):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(done), "the analysis ended before it could be killed"
    resumed = analysis(path)
    finished_before = int(resumed.stdout.split(" already done")[0].rsplit(", ", 1)[-1])
    assert finished_before >= 6 and "[r0/level_01/instability/10it/copy_a] training" not in resumed.stdout
    assert numbers(report(path)) == numbers(runs["result"])


def test_a_ray_worker_runs_the_analysis_tasks(runs):
    """The body of a Ray task (lth_tf.lottery.ray_backend.run_remote), called directly: a task of the analysis
    goes through the same worker code as an IMP task."""
    from lth_tf.lottery.ray_backend import run_remote

    path = runs["path"]
    cfg = RunDir(path).settings()
    task = spawn_tasks.rewind_point(0, 27)
    status, metrics, _, _ = run_remote(cfg.to_dict(), path, dataclasses.astuple(task))
    assert status == "done" and metrics == read(path, task.key)  # finished: read, not retrained
    task = spawn_tasks.rewind_point(0, 5)
    status, metrics, _, _ = run_remote(cfg.to_dict(), path, dataclasses.astuple(task))
    assert status == "done" and metrics["kind"] == "rewind" and metrics["steps"] == 5
    assert os.path.exists(os.path.join(path, task.key, "weights.npz"))


def test_bilstm_with_lamp_pruning(tmp_path):
    flags = ["--dataset=imdb_sample", "--model=lstm", "--vocab_size=300", "--embedding_dim=8", "--hidden=4",
             "--max_len=64", "--levels=1", "--epochs=1", "--patience=0", "--strategy=lamp", "--branches=ticket",
             "--threads=1", "--progress=false", f"--output_dir={tmp_path / 'out'}", f"--cache_dir={tmp_path / 'cache'}"]
    cli("lth_tf.main", flags)
    (name,) = os.listdir(tmp_path / "out")
    path = str(tmp_path / "out" / name)
    analysis(path, "--rewind_steps=0it", "--points=2")
    (row,) = report(path)["steps"]
    (rep,) = row["replicates"]
    e0, e1 = (100 * e for e in rep["path"]["valid_error"])
    assert rep["path"]["alpha"] == [0.0, 1.0] and row["instability"] == pytest.approx(abs(e0 - e1) / 2)
    assert rep["path"]["valid_loss"][0] == read(path, "r0/level_01/instability/0it/copy_a")["valid_loss"]


@pytest.mark.parametrize("args,flag", [(["--level=3"], "--level=3"), (["--rewind_steps=3 epochs"], "--rewind_steps"),
                                       (["--rewind_steps=9ep"], "--rewind_steps=9ep"), (["--points=1"], "--points=1"),
                                       (["--instability_replicates=x"], "--instability_replicates")])
def test_mistakes_are_one_line_naming_the_flag(runs, args, flag):
    proc = analysis(runs["path"], *args, check=False)
    assert proc.returncode == 2 and flag in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
