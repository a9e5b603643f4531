"""End to end: the CLI on the embedded sample, every branch, replicates, resume after SIGKILL, bad flags."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lth_tf.config import Step
from lth_tf.lottery import Task, plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=2000", "--embedding_dim=8", "--filters=4",
        "--epochs=2", "--patience=1", "--progress=false"]


def cli(args, cache_dir, check=True, **kwargs):
    cmd = [sys.executable, "-m", "lth_tf.main", *TINY, f"--cache_dir={cache_dir}", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def run_dir_of(output_dir):
    (name,) = [d for d in os.listdir(output_dir) if d.startswith("cnn_")]
    return os.path.join(output_dir, name)


def comparable(records):
    """What a task computed, without how long it took and where (the CPU: records name it since 2026-12-04)."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu")} for r in records]


def test_parse_step_and_plan():
    assert Step.parse("0it").iteration(100) == 0 and Step.parse("438it").iteration(100) == 438
    assert Step.parse("1ep").iteration(438) == 438 and Step.parse("2ep5it").iteration(10) == 25
    assert str(Step.parse("2ep5it")) == "2ep5it" and Step.parse("1ep") == Step(epochs=1)
    with pytest.raises(Exception, match="rewind_step"):
        Step.parse("3 epochs")
    tasks = plan(2, ["ticket", "reinit"], 2)
    assert tasks[0] == Task(0, 0, "ticket") and len(tasks) == 2 * (1 + 2 * 2)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    cli(["--levels=3", "--replicates=2", "--branches=ticket,reinit,random_mask,study_random",
         f"--output_dir={out}"], cache_dir=out / "cache")
    return run_dir_of(out)


def test_end_to_end_outputs(full_run):
    with open(os.path.join(full_run, "results.json")) as f:
        results = json.load(f)
    records = results["records"]
    assert len(records) == 2 * (1 + 3 * 4)
    for r in records:
        for key in ("replicate", "branch", "level", "sparsity", "sparsity_by_tensor", "valid_loss",
                    "valid_accuracy", "test_accuracy", "epochs_trained", "seconds"):
            assert key in r
    by = {(r["replicate"], r["branch"], r["level"]): r for r in records}
    for level in range(4):
        ticket = by[(0, "ticket", level)]
        assert abs(ticket["sparsity_by_tensor"]["conv3/kernel"] - (1 - 0.8 ** level)) < 0.01
        if level:
            for branch in ("reinit", "random_mask", "study_random"):
                assert by[(1, branch, level)]["sparsity"] == pytest.approx(by[(1, "ticket", level)]["sparsity"],
                                                                           abs=0.01)
    # same-mask control really uses the ticket's mask; the random mask does not
    d = lambda rep, lvl, b: os.path.join(full_run, f"r{rep}", f"level_{lvl:02d}", b)
    with np.load(os.path.join(d(0, 2, "ticket"), "mask.npz")) as ticket_mask, \
            np.load(os.path.join(d(0, 2, "random_mask"), "mask.npz")) as random_mask:
        assert not np.array_equal(ticket_mask["embedding/embeddings"], random_mask["embedding/embeddings"])
    with np.load(os.path.join(d(0, 2, "ticket"), "weights.npz")) as w, \
            np.load(os.path.join(d(0, 2, "ticket"), "mask.npz")) as m:
        for name in m.files:
            assert np.all(w[name][~m[name]] == 0)
    # replicates differ
    assert by[(0, "ticket", 0)]["valid_loss"] != by[(1, "ticket", 0)]["valid_loss"]
    with open(os.path.join(full_run, "results.csv")) as f:
        assert len(f.read().strip().splitlines()) == len(records) + 1
    summary = open(os.path.join(full_run, "summary.md")).read()
    assert "chosen by validation accuracy" in summary and "±" in summary and "study's own numbers" not in summary
    assert "Matching rule" in summary and "every replicate at level" in summary and "n=2" in summary
    assert "statistics" in results and results["statistics"]["chosen_level"] in range(1, 4)
    for png in ("accuracy_vs_sparsity.png", "sparsity_per_tensor.png"):
        assert os.path.getsize(os.path.join(full_run, png)) > 1000
    assert os.listdir(os.path.join(full_run, "tensorboard", "r0", "reinit"))


def test_rerun_skips_finished_levels(full_run, tmp_path):
    out = os.path.dirname(full_run)
    started = time.perf_counter()
    proc = cli(["--levels=3", "--replicates=2", "--branches=ticket,reinit,random_mask,study_random",
                f"--output_dir={out}"], cache_dir=os.path.join(out, "cache"))
    assert "26 already done" in proc.stdout + proc.stderr
    assert time.perf_counter() - started < 120


def test_killed_run_resumes_to_identical_results(tmp_path):
    args = ["--levels=2", "--branches=ticket,reinit", "--epochs=3", "--patience=0"]
    cache = tmp_path / "cache"
    cli(args + [f"--output_dir={tmp_path / 'clean'}"], cache_dir=cache)
    clean = json.load(open(os.path.join(run_dir_of(tmp_path / "clean"), "results.json")))["records"]

    killed_out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lth_tf.main", *TINY, f"--cache_dir={cache}", *args, f"--output_dir={killed_out}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # Kill while level 1 trains: level 0 done, level 1's ticket not yet.
    while time.time() < deadline:
        if os.path.isdir(killed_out) and os.listdir(killed_out):
            run_dir = run_dir_of(killed_out)
            if os.path.exists(os.path.join(run_dir, "r0", "level_00", "ticket", "metrics.json")):
                break
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = run_dir_of(killed_out)
    assert not os.path.exists(os.path.join(run_dir, "results.json"))
    leftovers = [f for _, _, files in os.walk(run_dir) for f in files if f.startswith(".tmp-")]
    cli(args + [f"--output_dir={killed_out}"], cache_dir=cache)
    resumed = json.load(open(os.path.join(run_dir, "results.json")))["records"]
    assert comparable(resumed) == comparable(clean)
    # a SIGKILL can leave a temp file, never a half-written result file
    assert all(f.startswith(".tmp-") for f in leftovers)


@pytest.mark.parametrize("flag,message", [
    ("--dataset=mnist", "--dataset"),
    ("--model=resnet", "--model"),
    ("--prune_fraction=1.5", "--prune_fraction"),
    ("--levels=-1", "--levels"),
    ("--branches=ticket,lucky", "--branches"),
    ("--late_rewind --rewind_step=999ep", "--rewind_step"),
    ("--output_dir=/proc/forbidden", "--output_dir"),
])
def test_bad_flags_fail_at_start_with_one_line(flag, message, tmp_path):
    args = flag.split() + ([] if "output_dir" in flag else [f"--output_dir={tmp_path}"])
    proc = cli(args, cache_dir=tmp_path / "cache", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in proc.stderr


def test_a_flag_before_a_flagfile_that_sets_it_again_is_refused_naming_both(tmp_path):
    # absl applies arguments in order, so the file would silently win: `--levels=10 --flagfile=imdb.cfg` ran 20.
    preset = tmp_path / "preset.cfg"
    preset.write_text("# a preset\n--prune_fraction=0.3\n")
    proc = cli(["--prune_fraction=0.5", f"--flagfile={preset}", f"--output_dir={tmp_path / 'out'}"],
                cache_dir=tmp_path / "cache", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --prune_fraction=0.5 comes before") and f"{preset} line 2" in last
    assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "out")


def test_only_a_command_line_flag_that_a_later_flagfile_sets_again_is_reported(tmp_path):
    from lth_tf.cli import flag_overridden_by_flagfile
    known = {"levels", "late_rewind", "branches", "threads"}.__contains__
    base, preset = tmp_path / "base.cfg", tmp_path / "preset.cfg"
    base.write_text("--levels=20\n--branches=ticket,reinit\n")
    preset.write_text(f"# nested, as flags/imdb_cnn_late_rewind.cfg\n--flagfile={base}\n--late_rewind\n")
    check = lambda *args: flag_overridden_by_flagfile([*args], known)  # noqa: E731
    assert f"{base} line 1: --levels=20" in check("--levels=10", f"--flagfile={preset}")
    assert f"{preset} line 3: --late_rewind" in check("--nolate_rewind", f"--flagfile={preset}")
    assert check(f"--flagfile={preset}", "--levels=10", "--branches=ticket") is None  # after: the flag wins
    assert check("--threads=2", f"--flagfile={preset}") is None  # the file does not set it
    assert check("--levels=10", f"--flagfile={tmp_path / 'missing.cfg'}") is None  # absl names a missing file


def test_lstm_runs_through_the_lottery_with_fast_lstm(tmp_path):
    args = ["--model=lstm", "--hidden=8", "--levels=1", "--epochs=1", "--branches=ticket",
            f"--output_dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", "--dataset=imdb_sample", "--vocab_size=2000",
                           "--embedding_dim=8", "--progress=false", f"--cache_dir={tmp_path / 'cache'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (name,) = [d for d in os.listdir(tmp_path) if d.startswith("lstm_")]
    with np.load(os.path.join(tmp_path, name, "r0", "level_01", "ticket", "weights.npz")) as w, \
            np.load(os.path.join(tmp_path, name, "r0", "level_01", "ticket", "mask.npz")) as m:
        assert "bilstm2/backward/recurrent_kernel" in m.files
        for key in m.files:
            assert np.all(w[key][~m[key]] == 0)


def test_branch_table_and_task_graph():
    from lth_tf.config import BRANCHES as FLAG_CHOICES
    from lth_tf.lottery import BRANCHES, dependencies

    assert tuple(BRANCHES) == FLAG_CHOICES
    assert [b for b in BRANCHES if BRANCHES[b].is_trajectory] == ["ticket", "study_random", "early_bird"]
    assert dependencies(Task(0, 0, "ticket")) == []
    assert dependencies(Task(1, 1, "reinit")) == [Task(1, 0, "ticket")]
    assert dependencies(Task(0, 3, "ticket")) == [Task(0, 2, "ticket"), Task(0, 0, "ticket")]
    assert dependencies(Task(0, 3, "reinit")) == [Task(0, 2, "ticket")]  # fresh init: no rewind point
    assert dependencies(Task(0, 3, "random_mask")) == [Task(0, 2, "ticket"), Task(0, 0, "ticket")]
    assert dependencies(Task(0, 3, "study_random")) == [Task(0, 2, "study_random")]
    assert dependencies(Task(0, 3, "early_bird_ticket")) == [Task(0, 2, "early_bird"), Task(0, 0, "ticket")]
    assert dependencies(Task(0, 1, "early_bird_ticket")) == [Task(0, 0, "ticket")]
    tasks = plan(3, list(BRANCHES), 2)
    position = {t: i for i, t in enumerate(tasks)}
    assert all(position[d] < position[t] for t in tasks for d in dependencies(t))


LEGACY = os.path.join(ROOT, "tests", "fixtures", "legacy_run_v1")
LEGACY_FLAGS = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=300", "--embedding_dim=8", "--filters=4",
                "--levels=2", "--epochs=2", "--patience=1", "--branches=ticket,reinit,random_mask,study_random",
                "--late_rewind", "--rewind_step=3it", "--progress=false"]


def test_a_run_made_by_the_previous_code_resumes_with_identical_numbers(tmp_path):
    """tests/fixtures/legacy_run_v1: made at commit 23174be, then level 2 removed as a kill would leave it.
    The new code finds it by its old name, recomputes level 2, and matches the old code's complete run."""
    import shutil

    name = "cnn_imdb_sample_87bc0136d1"
    shutil.copytree(os.path.join(LEGACY, name), tmp_path / "out" / name)
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *LEGACY_FLAGS, f"--output_dir={tmp_path / 'out'}",
                           f"--cache_dir={tmp_path / 'cache'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.listdir(tmp_path / "out") == [name] and "6 already done" in proc.stdout
    expected = json.load(open(os.path.join(LEGACY, "expected_results.json")))["records"]
    resumed = json.load(open(tmp_path / "out" / name / "results.json"))["records"]
    key = lambda r: (r["replicate"], r["level"], r["branch"])  # noqa: E731
    # The fixture was made on an AMD EPYC. On another CPU oneDNN picks other kernels, so float sums run in
    # another order (docs/reliability.md): the recomputed losses then agree to ~1e-7, everything else exactly.
    assert_close(sorted(comparable(resumed), key=key), sorted(comparable(expected), key=key), rel=1e-6)


def assert_close(a, b, rel, where="records"):
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=rel), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            assert_close(a[k], b[k], rel, f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, rel, f"{where}[{i}]")
    else:
        assert a == b, where


def test_flag_mistakes_fail_before_tensorflow_loads_and_make_no_directory(tmp_path):
    for args in (["--strategy=glob"], ["--levels=abc"], ["--no_such_flag=1"], ["stray_argument"]):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *args, f"--output_dir={tmp_path / 'out'}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert time.perf_counter() - started < 4, "TensorFlow loaded before the flags were checked"
    assert not os.path.exists(tmp_path / "out")


def test_help_lists_the_flags_and_version_prints():
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--late_rewind" in proc.stdout and "--prune_fraction" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("lth_tf ")
