"""Ticket transfer (lth_tf.lottery.transfer): an IMDb-sample CNN ticket carried into AG News-sample runs.
A tiny source run (1 level, 1 epoch) and one transfer (ticket, reinit, random_mask) are shared by the tests."""
import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import results
from lth_tf import cli
from lth_tf.errors import UserError
from lth_tf.rundir import RunDir, Task, run_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model=cnn", "--vocab_size=300", "--embedding_dim=8", "--filters=4", "--epochs=1", "--patience=0",
        "--threads=1"]
BRANCHES = "--branches=ticket,reinit,random_mask"
TICKET = Task(0, 1, "ticket")


def config(args, cache):
    return cli.config_from_args([*TINY, f"--cache_dir={cache}", *args], where="test")


def target_args(source_path, *extra):
    return ["--dataset=ag_news_sample", "--levels=1", BRANCHES, f"--transfer_from={source_path}",
            "--transfer_level=1", *extra]


def execute(cfg, out, log=None):
    from lth_tf.keras import tf
    from lth_tf.lottery.executor import execute as run

    tf.config.experimental.enable_op_determinism()
    (run_dir,) = run([cfg], str(out), log=log or (lambda m: None), progress=False)
    return run_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def source(tmp_path_factory, cache):
    """A finished IMDb-sample CNN run: its level-1 ticket is what the tests transfer."""
    cfg = config(["--dataset=imdb_sample", "--levels=1", "--branches=ticket"], cache)
    return execute(cfg, tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def transfer(tmp_path_factory, cache, source):
    """(settings, run directory, Experiment) of the transfer into AG News (4 classes)."""
    from lth_tf.lottery.executor import prepare

    cfg = config(target_args(source.path), cache)
    assert cfg.validate() == []
    out = tmp_path_factory.mktemp("target")
    run = execute(cfg, out)
    return cfg, run, prepare(cfg, str(out), log=lambda m: None)


def numbers(metrics):
    """A task's metrics without its wall times."""
    history = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in metrics["history"]]
    return {**{k: v for k, v in metrics.items() if k != "seconds"}, "history": history}


def rows(source, run):
    """(target ids, source ids) of the tokens both vocabularies hold."""
    index = {t: i for i, t in enumerate(source.vocab())}
    pairs = [(j, index[t]) for j, t in enumerate(run.vocab()) if t in index]
    return np.array([j for j, _ in pairs]), np.array([i for _, i in pairs])


def test_matched_tensors_carry_the_source_mask_and_weights_exactly(source, transfer):
    _, run, experiment = transfer
    ours, theirs = rows(source, run)
    assert list(run.vocab()[:2]) == ["<pad>", "<unk>"] and list(ours[:2]) == [0, 1] and list(theirs[:2]) == [0, 1]
    assert 2 < len(ours) < len(run.vocab())  # some words shared, some not
    source_mask, source_start = source.read_masks(TICKET), source.read_rewind(0)
    mask, start = run.read_masks(TICKET), experiment.start_weights(TICKET)
    assert np.array_equal(mask["embedding/embeddings"][ours], source_mask["embedding/embeddings"][theirs])
    assert np.array_equal(start["embedding/embeddings"][ours], source_start["embedding/embeddings"][theirs])
    for name in ("conv3/kernel", "conv3/bias", "conv5/kernel"):
        assert np.array_equal(mask[name], source_mask[name]) and np.array_equal(start[name], source_start[name])
    # what the ticket trained from: its stored mask is the transferred one; its start is the transferred weights
    shapes = {n: m.shape for n, m in mask.items()}
    assert all(np.array_equal(mask[n], m) for n, m in experiment.derive_masks(TICKET, shapes).items())
    trained = run.read_weights(TICKET)
    assert all(np.all(trained[n][~m] == 0) for n, m in mask.items())


def test_unmatched_rows_get_a_fresh_init_and_the_embedding_sparsity(source, transfer):
    _, run, experiment = transfer
    ours, _ = rows(source, run)
    fresh = np.setdiff1d(np.arange(len(run.vocab())), ours)
    kept = source.read_masks(TICKET)["embedding/embeddings"]
    mask = run.read_masks(TICKET)["embedding/embeddings"][fresh]
    assert mask.sum() == round(kept.mean() * mask.size)  # exactly the source embedding's density
    theta0 = experiment.build(experiment.seed(0)).snapshot()
    assert np.array_equal(experiment.start_weights(TICKET)["embedding/embeddings"][fresh],
                          theta0["embedding/embeddings"][fresh])


def test_an_output_layer_of_another_size_is_reinitialised_with_its_own_mask(source, transfer):
    _, run, experiment = transfer
    source_mask, mask = source.read_masks(TICKET), run.read_masks(TICKET)
    assert source_mask["output/kernel"].shape == (12, 1) and mask["output/kernel"].shape == (12, 4)
    for name in ("output/kernel", "output/bias"):
        assert mask[name].sum() == round(source_mask[name].mean() * mask[name].size)
    theta0 = experiment.build(experiment.seed(0)).snapshot()
    assert np.array_equal(experiment.start_weights(TICKET)["output/kernel"], theta0["output/kernel"])
    record = run.read_transfer()
    assert record["reinitialised"] == ["output/kernel", "output/bias"]
    assert record["tensors"]["conv3/kernel"]["carried"] == "copied"
    assert record["tensors"]["embedding/embeddings"]["carried"] == "rows matched by token"
    e = record["embedding"]
    assert e["matched_rows"] == len(rows(source, run)[0]) and e["special_tokens_matched"] == ["<pad>", "<unk>"]
    assert 0 < e["train_tokens_covered"] < 1 and record["source"]["run"] == source.name
    summary = open(run.file("summary.md")).read()
    assert f"Transfer: the ticket of {source.name}" in summary and "(2 -> 4 classes)" in summary
    assert "ticket − reinit at level 1" in summary and "ticket − random_mask at level 1" in summary


def test_controls_take_the_transferred_mask_or_its_sparsity(transfer):
    _, run, experiment = transfer
    ticket = run.read_masks(TICKET)
    reinit, random = run.read_masks(Task(0, 1, "reinit")), run.read_masks(Task(0, 1, "random_mask"))
    assert all(np.array_equal(ticket[n], reinit[n]) for n in ticket)
    assert all(ticket[n].sum() == random[n].sum() for n in ticket)
    assert not np.array_equal(ticket["embedding/embeddings"], random["embedding/embeddings"])
    start = experiment.start_weights(TICKET)
    assert all(np.array_equal(start[n], w) for n, w in experiment.start_weights(Task(0, 1, "random_mask")).items())
    assert not np.array_equal(start["conv3/kernel"], experiment.start_weights(Task(0, 1, "reinit"))["conv3/kernel"])


def test_the_source_names_the_run_not_its_path(source, cache, tmp_path):
    cfg = config(target_args(source.path), cache)
    plain = config(["--dataset=ag_news_sample", "--levels=1", BRANCHES], cache)
    moved = tmp_path / "elsewhere" / source.name
    shutil.copytree(source.path, moved)
    level0 = config(target_args(source.path, "--transfer_level=0"), cache)
    identity = cfg.identity()
    assert identity["experiment.transfer_from"] == source.name and identity["experiment.transfer_level"] == 1
    assert run_name(cfg, "fp") != run_name(plain, "fp") and run_name(level0, "fp") != run_name(cfg, "fp")
    assert run_name(config(target_args(moved), cache), "fp") == run_name(cfg, "fp")
    # transfer settings without --transfer_from are noted, ignored, and name no run
    stray = dataclasses.replace(plain, experiment=dataclasses.replace(plain.experiment, transfer_level=3))
    assert stray.validate() == ["--transfer_level=3 applies only with --transfer_from: ignored"]
    assert stray.identity() == plain.identity()


def _late_rewind_copy(source, tmp_path):
    """The source as a late-rewinding run that kept no rewind.npz (its config says so)."""
    import json

    copy = tmp_path / "late" / source.name
    shutil.copytree(source.path, copy)
    os.remove(copy / "r0" / "rewind.npz")
    config_file = json.load(open(copy / "config.json"))
    config_file["settings"]["experiment"]["late_rewind"] = True
    with open(copy / "config.json", "w") as f:
        json.dump(config_file, f)
    return copy


def _record(source, tmp_path):
    from lth_tf.archive import save

    return save(source, str(tmp_path / "records"))[0]


def _renamed_copy(source, tmp_path):
    copy = tmp_path / "renamed" / "my_ticket"
    shutil.copytree(source.path, copy)
    return copy


@pytest.mark.parametrize("change, message", [
    (lambda s, t: ["--transfer_from=" + str(t / "missing")], "--transfer_from=" + "{t}/missing: no such directory"),
    (lambda s, t: ["--transfer_from=" + str(t)], "no config.json"),
    (lambda s, t: ["--transfer_level=-1"], "needs --transfer_level=L"),
    (lambda s, t: ["--transfer_level=4"], "--transfer_level=4: the source's replicate 0 has not finished"),
    (lambda s, t: ["--transfer_replicate=2"], "--transfer_replicate=2: the source run has replicate(s) 0"),
    (lambda s, t: ["--model=lstm"], "--model=lstm: the source run"),
    (lambda s, t: ["--filters=5"], "--filters=5: the source run"),
    (lambda s, t: ["--filter_sizes=3,4"], "--filter_sizes=3,4: the source run"),
    (lambda s, t: ["--noprune_output"], "--prune_output=False: the source run"),
    (lambda s, t: ["--late_rewind"], "--late_rewind: a transfer starts"),
    (lambda s, t: ["--branches=ticket,study_random"], "--branches=ticket,study_random: study_random"),
    (lambda s, t: ["--levels=0"], "--levels=0: with --transfer_from"),
    (lambda s, t: ["--transfer_from=" + str(_renamed_copy(s, t))], "give it its name back"),
    (lambda s, t: ["--transfer_from=" + str(_late_rewind_copy(s, t))], "which is missing (only θ0 can be rebuilt)"),
    (lambda s, t: ["--transfer_from=" + _record(s, t)], "a run record is restored first: python -m lth_tf.archive"),
])
def test_bad_transfer_settings_fail_with_one_line_naming_the_flag(change, message, source, cache, tmp_path):
    cfg = config(target_args(source.path) + change(source, tmp_path), cache)
    with pytest.raises(UserError) as e:
        cfg.validate()
    assert message.format(t=tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_the_command_checks_the_source_before_tensorflow_loads(source, tmp_path):
    check = ("import sys; from lth_tf import cli; cli.config_from_args(sys.argv[1:], 'test').validate(); "
             "print('tensorflow' in sys.modules)")
    args = [*TINY, *target_args(source.path)]
    proc = subprocess.run([sys.executable, "-c", check, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *args, "--transfer_level=7",
                           f"--output_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: --transfer_level=7") and not os.path.exists(tmp_path / "out")


def test_a_source_that_kept_only_masks_and_metrics_transfers_with_theta0_rebuilt(source, transfer, cache, tmp_path):
    from lth_tf.archive import restore, save
    from lth_tf.lottery.transfer import Source, rebuild_theta0

    cfg, run, _ = transfer
    rebuilt = rebuild_theta0(Source.open(cfg))
    kept = source.read_rewind(0)
    assert rebuilt.keys() == kept.keys() and all(np.array_equal(rebuilt[n], kept[n]) for n in kept)  # bit for bit
    archived = restore(save(source, str(tmp_path / "records"))[0], str(tmp_path / "restored"))  # no weights
    assert not any(f in ("weights.npz", "rewind.npz") for _, _, files in os.walk(archived.path) for f in files)
    out = tmp_path / "out"
    again = execute(config(target_args(archived.path), cache), out)
    assert os.path.basename(again.path) == os.path.basename(run.path)  # the same run, by the source's name
    assert again.read_transfer()["source"]["start"] == "θ0 rebuilt from the source's config.json (seed 0)"
    assert results(out) == results(os.path.dirname(run.path))


def test_a_transfer_resumes_without_retraining_finished_tasks_and_prunes_on(transfer, cache, tmp_path):
    from lth_tf.lottery.ray_backend import run_remote

    cfg, run, _ = transfer
    copy = tmp_path / "out" / os.path.basename(run.path)
    shutil.copytree(run.path, copy)
    reinit = Task(0, 1, "reinit")
    before = RunDir(str(copy)).read_metrics(reinit)
    os.remove(copy / reinit.key / "metrics.json")  # as a run interrupted while training it leaves it
    finished = {t: os.stat(copy / t.key / "metrics.json").st_mtime_ns for t in RunDir(str(copy)).finished()}
    # a Ray worker's path (the task's settings as a dict, a fresh Experiment): the same numbers as before
    status, metrics, _, _ = run_remote(cfg.to_dict(), str(copy), (0, 1, "reinit"))
    assert status == "done" and numbers(metrics) == numbers(before)
    os.remove(copy / reinit.key / "metrics.json")
    lines = []
    longer = dataclasses.replace(cfg, prune=dataclasses.replace(cfg.prune, levels=2))
    execute(longer, tmp_path / "out", log=lines.append)
    assert "7 tasks in 1 run(s), 3 already done" in lines
    assert all(os.stat(copy / t.key / "metrics.json").st_mtime_ns == ns for t, ns in finished.items())
    level1, level2 = (RunDir(str(copy)).read_masks(Task(0, level, "ticket")) for level in (1, 2))
    for name in ("embedding/embeddings", "conv3/kernel"):  # IMP goes on from the transferred mask
        alive = int(level1[name].sum())
        assert not np.any(level2[name] & ~level1[name]) and level2[name].sum() == alive - round(0.2 * alive)


def test_how_each_tensor_is_carried():
    from lth_tf.lottery.transfer import plan

    assert plan("embedding/embeddings", (302, 8), (5000, 8)) == "rows"
    assert plan("conv3/kernel", (3, 8, 4), (3, 8, 4)) == "copied" and plan("output/bias", (1,), (1,)) == "copied"
    assert plan("output/kernel", (12, 1), (12, 4)) == "fresh" and plan("output/bias", (1,), (4,)) == "fresh"
    for name, theirs, ours in (("embedding/embeddings", (302, 8), (302, 3)), ("conv3/kernel", (3, 8, 4), (3, 8, 5)),
                               ("output/kernel", (12, 1), (15, 1))):
        with pytest.raises(UserError, match="same architecture"):
            plan(name, theirs, ours)


def test_theta0_of_a_glove_source_is_rebuilt_bit_for_bit(cache, tmp_path):
    from lth_tf.lottery.transfer import Source, rebuild_theta0

    glove = os.path.join(ROOT, "tests", "fixtures", "glove_tiny.txt")
    src = execute(config(["--dataset=imdb_sample", "--levels=0", f"--glove_path={glove}"], cache), tmp_path)
    cfg = config(target_args(src.path, "--transfer_level=0", "--embedding_dim=3"), cache)
    assert cfg.validate() == []  # the GloVe file's width (3) is the embedding's, whatever --embedding_dim said
    rebuilt, kept = rebuild_theta0(Source.open(cfg)), src.read_rewind(0)
    assert rebuilt.keys() == kept.keys() and all(np.array_equal(rebuilt[n], kept[n]) for n in kept)
