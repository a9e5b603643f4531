"""A run's record (lth_tf.archive): no weights, and a run restored from it resumes to the numbers of an
undisturbed run."""
import os
import shutil
import subprocess
import sys

import pytest

from helpers import results, run_dir
from test_faults import ROOT, run_cli


def archive(*args):
    return subprocess.run([sys.executable, "-m", "lth_tf.archive", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive_reference")
    run_cli(root / "out", root / "cache")
    return root


def test_a_restored_record_resumes_to_the_undisturbed_numbers(reference, tmp_path):
    proc = archive(f"--save={run_dir(reference / 'out')}", f"--records={tmp_path / 'records'}")
    assert proc.returncode == 0, proc.stderr
    (record,) = [os.path.join(tmp_path / "records", d) for d in os.listdir(tmp_path / "records")]
    kept = {os.path.relpath(os.path.join(d, n), record) for d, _, names in os.walk(record) for n in names}
    assert not any(n.endswith(("weights.npz", "rewind.npz")) for n in kept)
    assert "r0/level_02/ticket/mask.npz" in kept and "r0/level_02/reinit/mask.npz" not in kept
    # A record saved while the run was at level 1: the last level's tasks are not in it.
    shutil.rmtree(os.path.join(record, "r0", "level_02"))

    proc = archive(f"--restore={record}", f"--output_dir={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr
    assert "4 finished task(s)" in proc.stdout
    resumed = run_cli(tmp_path / "out", reference / "cache")
    assert results(tmp_path / "out") == results(reference / "out")
    # Each input whose weights were not kept was recomputed once, from its stored mask.
    assert "recomputing r0/level_01/ticket" in resumed.stdout + resumed.stderr


def test_a_restored_control_borrows_its_tickets_stored_mask_without_recomputing_the_ticket(reference, tmp_path):
    records = tmp_path / "records"
    assert archive(f"--save={run_dir(reference / 'out')}", f"--records={records}").returncode == 0
    (record,) = [os.path.join(records, d) for d in os.listdir(records)]
    # Saved while the last level's controls were training: the ticket of that level is finished.
    for control in ("reinit", "random_mask"):
        shutil.rmtree(os.path.join(record, "r0", "level_02", control))

    assert archive(f"--restore={record}", f"--output_dir={tmp_path / 'out'}").returncode == 0
    resumed = run_cli(tmp_path / "out", reference / "cache")
    assert results(tmp_path / "out") == results(reference / "out")
    # (the level-0 task may be: a late-rewinding run's rewind point is a weights file too)
    assert "recomputing r0/level_01/ticket" not in resumed.stdout + resumed.stderr


def test_saving_again_rewrites_nothing_that_did_not_change(reference, tmp_path):
    records = tmp_path / "records"
    assert archive(f"--save={run_dir(reference / 'out')}", f"--records={records}").returncode == 0
    stamps = {os.path.join(d, n): os.stat(os.path.join(d, n)).st_mtime_ns for d, _, ns in os.walk(records) for n in ns}
    assert archive(f"--save={run_dir(reference / 'out')}", f"--records={records}").returncode == 0
    assert stamps == {os.path.join(d, n): os.stat(os.path.join(d, n)).st_mtime_ns
                      for d, _, ns in os.walk(records) for n in ns}


@pytest.mark.parametrize("args, says", [
    ([], "give one of --save"),
    (["--restore=/nonexistent/record", "--output_dir=/tmp"], "--restore=/nonexistent/record: no config.json"),
    (["--save=/nonexistent/run"], "--save=/nonexistent/run: no such directory"),
])
def test_bad_requests_get_one_line(args, says):
    proc = archive(*args)
    assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_instruments_reports_are_kept_but_not_their_plots(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir(reference / "out"), run)
    os.makedirs(run / "instability_level_01")
    for name in ("instability.json", "instability.md", "instability.png"):
        (run / "instability_level_01" / name).write_text("x")
    assert archive(f"--save={run}", f"--records={tmp_path / 'records'}").returncode == 0
    assert sorted(os.listdir(tmp_path / "records" / "run" / "instability_level_01")) == \
        ["instability.json", "instability.md"]


def test_an_export_of_a_restored_run_trains_the_missing_weights_back_bit_for_bit(reference, tmp_path):
    import numpy as np

    records, restored = tmp_path / "records", tmp_path / "out"
    assert archive(f"--save={run_dir(reference / 'out')}", f"--records={records}").returncode == 0
    (record,) = [os.path.join(records, d) for d in os.listdir(records)]
    assert archive(f"--restore={record}", f"--output_dir={restored}").returncode == 0
    proc = subprocess.run([sys.executable, "-m", "lth_tf.export", f"--run_dir={run_dir(restored)}", "--level=2",
                           "--no_tflite", f"--export_dir={tmp_path / 'exports'}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "r0/level_02/ticket has no weights.npz" in proc.stdout  # and its rewind point, level 0's, with it
    for name in ("r0/level_00/ticket/weights.npz", "r0/rewind.npz", "r0/level_02/ticket/weights.npz"):
        with np.load(os.path.join(run_dir(reference / "out"), name)) as a, \
                np.load(os.path.join(run_dir(restored), name)) as b:
            assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    bad = subprocess.run([sys.executable, "-m", "lth_tf.lottery.recompute", f"--run_dir={run_dir(restored)}",
                          "--tasks=r0/level_02"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "r<replicate>" in bad.stderr


def test_a_report_the_run_no_longer_has_leaves_the_record_but_tasks_stay(reference, tmp_path):
    run, records = tmp_path / "run", tmp_path / "records"
    shutil.copytree(run_dir(reference / "out"), run)
    os.makedirs(run / "init_magnitude")
    (run / "init_magnitude" / "init_magnitude.md").write_text("old name")
    assert archive(f"--save={run}", f"--records={records}").returncode == 0
    os.rename(run / "init_magnitude" / "init_magnitude.md", run / "init_magnitude" / "init_magnitude_r0.md")
    metrics = next(run.glob("r0/level_01/*/metrics.json"))
    metrics.unlink()  # a task being recomputed: not done for a while, still in the record
    assert archive(f"--save={run}", f"--records={records}").returncode == 0
    assert os.listdir(records / "run" / "init_magnitude") == ["init_magnitude_r0.md"]
    assert (records / "run" / metrics.relative_to(run)).exists()
