"""The sweep command: a grid of runs as one graph, its report, and runs that lth_tf.main finds again."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SET = ["--set=--vocab_size=300", "--set=--embedding_dim=8", "--set=--filters=4", "--set=--levels=1",
       "--set=--epochs=1", "--set=--replicates=1", "--set=--branches=ticket"]


def test_a_grid_sweep_runs_every_point_and_main_finds_its_runs(tmp_path):
    out, cache = tmp_path / "out", f"--set=--cache_dir={tmp_path / 'cache'}"
    base = [sys.executable, "-m", "lth_tf.sweep", "--set=--dataset=imdb_sample", *SET, cache, "--grid=seed=0,1",
            f"--output_dir={out}"]
    dry = subprocess.run(base + ["--dry_run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "sweep: 2 run(s)" in dry.stdout and dry.stdout.count(": 2 tasks") == 2
    proc = subprocess.run(base + ["--name=grid"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 tasks in 2 run(s)" in proc.stdout and "all 4 tasks done" in proc.stdout
    runs = sorted(d for d in os.listdir(out) if d.startswith("cnn_"))
    assert len(runs) == 2
    report = json.load(open(out / "sweeps" / "grid" / "sweep.json"))
    assert sorted(r["run"] for r in report["runs"]) == runs and all(r["tasks_done"] == 2 for r in report["runs"])
    again = subprocess.run([sys.executable, "-m", "lth_tf.main", "--dataset=imdb_sample", "--vocab_size=300",
                            "--embedding_dim=8", "--filters=4", "--levels=1", "--epochs=1", "--branches=ticket",
                            "--seed=1", "--progress=false", f"--cache_dir={tmp_path / 'cache'}",
                            f"--output_dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "2 already done" in again.stdout
    assert sorted(d for d in os.listdir(out) if d.startswith("cnn_")) == runs


def test_sweep_mistakes_are_one_line(tmp_path):
    for args in (["--grid=seed"], ["--flagfiles=nope.cfg"], ["--set=--levels=x"], ["--executor=slurm"]):
        proc = subprocess.run([sys.executable, "-m", "lth_tf.sweep", *args, f"--output_dir={tmp_path}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
