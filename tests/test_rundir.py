"""The run directory: names from identity, old runs found by their old name, validating reads."""
import os

import numpy as np
import pytest

from lth_tf import atomic
from lth_tf.atomic import DamagedFile
from lth_tf.config import DataConfig, RunConfig
from lth_tf.errors import UserError
from lth_tf.rundir import RunDir, Task, legacy_run_name, run_name


def test_same_experiment_same_directory_however_spelled(tmp_path):
    a = RunConfig(data=DataConfig(data_dir="../data/imdb", vocab_size=50_000))
    b = RunConfig(data=DataConfig(data_dir=os.path.abspath("/elsewhere/aclImdb.tar.xz")))
    assert run_name(a, "f" * 16) == run_name(b, "f" * 16)
    assert run_name(a, "f" * 16) != run_name(a, "e" * 16)  # other data content, other run
    assert RunDir.locate(a, str(tmp_path), "f" * 16).path == RunDir.locate(b, str(tmp_path), "f" * 16).path


def test_a_run_made_before_identities_is_found_by_its_old_name(tmp_path):
    cfg = RunConfig(data=DataConfig(data_dir="../data/imdb"))
    legacy = tmp_path / legacy_run_name(cfg)
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    assert RunDir.locate(cfg, str(tmp_path), "f" * 16).path == str(legacy)


def test_reads_name_damaged_files_and_writes_are_atomic(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    run.create()
    task = Task(0, 1, "ticket")
    run.write_masks(task, {"conv3/kernel": np.ones((2, 2), bool)})
    assert run.read_masks(task)["conv3/kernel"].all()
    for name, content in [("metrics.json", b"{\"valid_acc"), ("mask.npz", b"PK\x03\x04trunc"), ("weights.npz", b"")]:
        with open(run.task_file(task, name), "wb") as f:
            f.write(content)
    for read in (run.read_metrics, run.read_masks, run.read_weights):
        with pytest.raises(DamagedFile, match=str(tmp_path)):
            read(task)
    with pytest.raises(FileNotFoundError):
        run.read_rewind(0)
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp-")]


def test_open_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="--run_dir"):
        RunDir.open(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="config.json"):
        RunDir.open(str(tmp_path))


def test_stale_temporaries_of_dead_processes_go_live_ones_stay(tmp_path):
    live = tmp_path / f".tmp-{atomic.HOST}-{os.getpid()}-abc.json"
    dead = tmp_path / f".tmp-{atomic.HOST}-999999999-abc.json"
    old_style = tmp_path / ".tmp-abc.json"
    for p in (live, dead, old_style):
        p.write_text("x")
    assert atomic.remove_stale_temporaries(str(tmp_path)) == 2
    assert live.exists() and not dead.exists() and not old_style.exists()


def test_atomic_dir_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "out"
    with atomic.atomic_dir(str(target)) as tmp:
        open(os.path.join(tmp, "a"), "w").write("1")
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(str(target)) as tmp:
            open(os.path.join(tmp, "b"), "w").write("2")
            raise RuntimeError("killed")
    assert os.listdir(target) == ["a"]
    with atomic.atomic_dir(str(target)) as tmp:
        open(os.path.join(tmp, "b"), "w").write("2")
    assert os.listdir(target) == ["b"] and sorted(os.listdir(tmp_path)) == ["out"]


def test_a_pre_identity_run_is_found_however_its_data_path_was_spelled(tmp_path):
    old = RunConfig(data=DataConfig(data_dir="../shared/data/imdb", vocab_size=50_000))
    legacy = tmp_path / legacy_run_name(old)
    legacy.mkdir()
    atomic.write_json(str(legacy / "config.json"), {"settings": old.to_dict(), "run_hash": "x"})
    atomic.write_json(str(legacy / "data.json"), {"fingerprint": "f" * 16})
    now = RunConfig(data=DataConfig(data_dir="/work/shared/data/imdb"))
    assert RunDir.locate(now, str(tmp_path), "f" * 16).path == str(legacy)
    assert RunDir.locate(now, str(tmp_path), "e" * 16).path != str(legacy)  # other data: not that run
