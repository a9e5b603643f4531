"""The fault suite: kills at random moments, concurrent processes, damaged or missing files, Ctrl-C, a full
disk. Each must end with the results of an undisturbed run, or with one line saying what to do."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import results, run_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=300", "--embedding_dim=8", "--filters=4",
         "--levels=2", "--epochs=3", "--patience=1", "--branches=ticket,reinit,random_mask", "--late_rewind",
         "--rewind_step=1ep3it", "--progress=false"]


def command(out, cache, *extra):
    return [sys.executable, "-m", "lth_tf.main", *SMALL, f"--output_dir={out}", f"--cache_dir={cache}", *extra]


def run_cli(out, cache, *extra, check=True):
    proc = subprocess.run(command(out, cache, *extra), cwd=ROOT, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed run, and the data cache every other run shares."""
    root = tmp_path_factory.mktemp("reference")
    run_cli(root / "out", root / "cache")
    return root


def test_killed_at_random_moments_many_times_ends_identical(reference, tmp_path):
    rng = random.Random(20261201)
    out, kills, resumed_mid_level = tmp_path / "out", 0, 0
    for attempt in range(40):
        proc = subprocess.Popen(command(out, reference / "cache"), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            if attempt % 2:  # every other kill lands just after some level saved an epoch's checkpoint
                _wait_for_a_checkpoint(out, proc, rng.uniform(0.0, 0.3))
                raise subprocess.TimeoutExpired("checkpoint", 0)
            proc.wait(timeout=rng.uniform(3.0, 9.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        output = proc.communicate()[0]
        resumed_mid_level += output.count("resuming after epoch")
        if proc.returncode == 0:
            break
    else:  # a loaded machine makes little progress between kills: the last run goes to the end, undisturbed
        proc = subprocess.run(command(out, reference / "cache"), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=900)
        output = proc.stdout
        resumed_mid_level += output.count("resuming after epoch")
    assert proc.returncode == 0, output[-2000:]
    assert kills >= 3 and resumed_mid_level >= 1, (kills, resumed_mid_level)
    assert results(out) == results(reference / "out")
    print(f"kills survived: {kills}, resumed inside a level: {resumed_mid_level}")


def _wait_for_a_checkpoint(out, proc, delay, timeout=120):
    """Return `delay` seconds after a new epoch checkpoint appears (or when the process ends)."""
    deadline, seen = time.time() + timeout, set()
    before = {os.path.getmtime(d) for d, _, _ in os.walk(out) if os.path.basename(d) == "checkpoint"} \
        if os.path.isdir(out) else set()
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(out):
            seen = {os.path.getmtime(d) for d, _, _ in os.walk(out) if os.path.basename(d) == "checkpoint"}
            if seen - before:
                time.sleep(delay)
                return
        time.sleep(0.1)
    raise subprocess.TimeoutExpired("checkpoint", timeout)


def test_a_task_resumed_inside_its_level_counts_the_seconds_of_its_earlier_attempts(reference, tmp_path):
    # a killed attempt's seconds are in the checkpoint it left: add an hour to them, resume, and the task's
    # metrics count that hour (a task's seconds feed the wall-time tables and the makespan projections)
    from lth_tf.rundir import TaskCheckpoints

    out, left = tmp_path / "out", []
    for _ in range(10):  # a level can finish (and clear its checkpoint) between the sighting and the kill
        proc = subprocess.Popen(command(out, reference / "cache"), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _wait_for_a_checkpoint(out, proc, 0.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = [d for d, _, _ in os.walk(out) if os.path.basename(d) == "checkpoint"]
        if left:
            break
    assert left, "no kill landed inside a level"
    checkpoints = TaskCheckpoints(left[0])
    saved = checkpoints.load()
    earlier = saved.progress.seconds + 3600.0
    saved.progress.seconds = earlier
    checkpoints.save(saved)
    run_cli(out, reference / "cache")
    with open(os.path.join(os.path.dirname(left[0]), "metrics.json")) as f:
        metrics = json.load(f)
    assert earlier < metrics["seconds"] < earlier + 600


def test_two_processes_on_one_run_share_the_work_and_match(reference, tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(command(out, reference / "cache"), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trained = [o.count("] training ...") for o in outputs]
    assert sum(trained) == 7 and min(trained) >= 1, trained  # each task once, both worked
    assert results(out) == results(reference / "out")


@pytest.mark.parametrize("damage", ["truncated_metrics", "empty_metrics", "truncated_mask", "deleted_mask",
                                    "truncated_rewind", "deleted_rewind", "deleted_level", "truncated_weights"])
def test_damaged_or_missing_files_are_named_and_recomputed(reference, tmp_path, damage):
    out = tmp_path / "out"
    shutil.copytree(reference / "out", out)
    run = run_dir(out)
    level1 = os.path.join(run, "r0", "level_01", "ticket")
    target = {"truncated_metrics": os.path.join(level1, "metrics.json"),
              "empty_metrics": os.path.join(level1, "metrics.json"),
              "truncated_mask": os.path.join(level1, "mask.npz"),
              "deleted_mask": os.path.join(level1, "mask.npz"),
              "truncated_rewind": os.path.join(run, "r0", "rewind.npz"),
              "deleted_rewind": os.path.join(run, "r0", "rewind.npz"),
              "deleted_level": os.path.join(run, "r0", "level_01"),
              "truncated_weights": os.path.join(level1, "weights.npz")}[damage]
    if damage.startswith("deleted_level"):
        shutil.rmtree(target)
    elif damage.startswith("deleted"):
        os.remove(target)
    else:
        size = 0 if damage.startswith("empty") else os.path.getsize(target) // 2
        with open(target, "r+b") as f:
            f.truncate(size)
    # Tasks downstream of the damage must be recomputed; take them out so the run needs the damaged inputs.
    shutil.rmtree(os.path.join(run, "r0", "level_02"))
    os.remove(os.path.join(run, "results.json"))
    proc = run_cli(out, reference / "cache")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert results(out) == results(reference / "out")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_or_sigterm_prints_where_it_stopped_exits_130_and_resumes(stop, reference, tmp_path):
    out = tmp_path / "out"
    # A shell that starts this suite in the background (`pytest &`) ignores SIGINT, and an ignored SIGINT
    # is inherited across exec (Python then installs no handler): give the child the default, as at a terminal.
    proc = subprocess.Popen(command(out, reference / "cache"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline:  # interrupt while level 1 trains
        if os.path.isdir(out) and os.listdir(out) and os.path.isdir(os.path.join(run_dir(out), "r0", "level_01")):
            break
        time.sleep(0.02)
    # Level 1 of this tiny run can end within a second: freeze the process where it is (in level 1), interrupt,
    # then let it go on, so that the interrupt lands in level 1 however fast or loaded the machine is.
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(stop)
    proc.send_signal(signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted during r0/level_01/") and "rerun" in lines[0], lines
    run_cli(out, reference / "cache")
    assert results(out) == results(reference / "out")


def test_a_full_disk_names_the_file_and_keeps_earlier_results(reference, tmp_path):
    """ENOSPC from the first weights file written (simulated: this machine has no small filesystem to fill)."""
    out = tmp_path / "out"
    shutil.copytree(reference / "out", out)
    shutil.rmtree(os.path.join(run_dir(out), "r0", "level_02"))
    before = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    script = ("import errno, sys; import lth_tf.atomic as a; from lth_tf import main\n"
              "def full(path, *x, **k): raise OSError(errno.ENOSPC, 'No space left on device', path)\n"
              "a.write_npz = full\n"
              f"sys.argv = {command(out, reference / 'cache')[3:]!r}; sys.argv.insert(0, 'lth_tf.main')\n"
              "main.run()\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot write ") and "No space left" in line and "rerun" in line
    after = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    assert set(before) <= set(after)
