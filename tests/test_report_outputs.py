"""The report's outputs on hand-made run directories: the study report (module and command), plots for one
and three replicates, a run's full report (results, summary, TensorBoard) and a sweep's report."""
import json
import os
import subprocess
import sys

import pytest

from lth_tf import atomic, report, rundir
from lth_tf.report import analysis, plots, study, study_tables, summary
from test_report import VALID, config, grid, make_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def _png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == PNG and os.path.getsize(path) > 5000


@pytest.fixture
def imdb_cnn(tmp_path):
    """IMDb + CNN, three replicates, levels 0-4, the ticket and the same-mask control."""
    return make_run(tmp_path / "cnn_imdb_aaaa", config(levels=4, replicates=3),
                    grid(VALID, branches=("ticket", "reinit")))


def test_study_report_shows_our_cells_beside_the_study_and_marks_the_rest_not_run(imdb_cnn, tmp_path):
    late = make_run(tmp_path / "cnn_imdb_late", config(levels=2, replicates=1, late_rewind=True),
                    grid([[0.86, 0.87, 0.85]]))
    text = study_tables.render(study.collect([imdb_cnn.path, late.path]), {"ag_news/lstm/ticket": 36.5})
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    ours = rows["IMDb + CNN"].split(" | ")
    # study: 87.04 dense, 87.55 ticket at 36% | ours: test = valid - 1 point, the level chosen on validation (2)
    assert ours[1:3] == ["87.04", "85.00 ± 2.48 (n=3)"] and ours[3] == "87.55"
    assert ours[4].startswith("86.00 ± ") and ours[4].endswith("(n=3), level 2 ✓")
    assert ours[5:8] == ["36%", "36.0% (level 2)", "level 2: 36.0% (test 86.00 ± 2.37)"]
    assert "4 levels run (study 20)" in ours[8]
    assert rows["AG News + LSTM"].count("not run") == 4 and "projected ≈ 36.5 h" in rows["AG News + LSTM"]
    assert "projected" not in rows["AG News + CNN"] and rows["AG News + CNN"].count("not run") == 4
    assert rows["IMDb + CNN, fine-tune"].count("not run") == 4 and "87.64" in rows["IMDb + CNN, fine-tune"]
    lr = rows["IMDb + CNN, true late rewinding ‡"].split(" | ")
    assert lr[1] == "—" and lr[2] == "85.00 [84.29, 85.69] (n=1)"  # one seed: the test set's Wilson interval
    assert "true late rewinding to 1ep" in lr[8] and "one seed" in lr[8]
    # every replicate at the chosen level, never a mean of tickets at different levels
    assert "every replicate at level 2: r0 (seed 0): valid 87.10, test 86.10; r1 (seed 1): valid 86.00" in text
    assert "picked on test" not in text or "best TEST accuracy" in text
    assert study_tables.NOT_RUN in text and "Choice rule" in text and "Matching rule" in text
    # the verdicts: the late-rewinding run judged against the θ0 ticket of its seed, the control in its run
    verdict_rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert any(r.startswith("| late rewinding helps") and "IMDb + CNN, true late rewinding" in r for r in verdict_rows)
    assert any(r.startswith("| reset to θ0 beats") and "| IMDb + CNN |" in r for r in verdict_rows)


def test_a_level_chosen_among_fewer_levels_than_were_run_says_so(tmp_path):
    # replicate 0 to level 4, replicates 1-2 to level 2 (the campaign's shape): the ticket is chosen among
    # levels 1-2, where all three replicates are, and the study's table says so
    valid = [VALID[0], VALID[1][:3], VALID[2][:3]]
    run = make_run(tmp_path / "cnn_imdb_deep", config(levels=4, replicates=3), grid(valid))
    (cell,) = study.collect([run.path])
    assert cell.an.candidates == [1, 2] and cell.an.chosen == 2 and cell.an.top_level == 4
    assert "level chosen among levels 1-2, those 3 replicates finished (the rest of levels 1-4: fewer)" in \
        cell.differences
    # a level one replicate has not finished (being recomputed) leaves a gap
    gap = make_run(tmp_path / "cnn_imdb_gap", config(levels=4, replicates=3),
                   [m for m in grid(VALID) if (m["replicate"], m["level"]) != (1, 3)])
    (cell,) = study.collect([gap.path])
    assert cell.an.candidates == [1, 2, 4]
    assert "level chosen among levels 1-2, 4, those 3 replicates finished (the rest of levels 1-4: fewer)" in \
        cell.differences
    full = make_run(tmp_path / "cnn_imdb_full", config(levels=4, replicates=3), grid(VALID))
    (cell,) = study.collect([full.path])
    assert not any("chosen among" in d for d in cell.differences)


def test_study_report_pools_runs_that_differ_only_in_seed(tmp_path):
    a = make_run(tmp_path / "a", config(levels=1, replicates=1, seed=0), grid([[0.86, 0.87]], seed0=0))
    b = make_run(tmp_path / "b", config(levels=1, replicates=2, seed=1), grid([[0.85, 0.86], [0.84, 0.86]], seed0=1))
    (cell,) = study.collect([a.path, b.path])
    assert cell.an.dense.n == 3 and cell.an.dense.test.method == "t" and not cell.notes
    c = make_run(tmp_path / "c", config(levels=1, replicates=2, seed=0), grid([[0.86, 0.87], [0.8, 0.8]], seed0=0))
    (cell,) = study.collect([a.path, c.path])  # seed 0 twice: counted once
    assert cell.an.dense.n == 2 and any("not counted twice" in note for note in cell.notes)


def test_study_command_writes_the_report_and_refuses_bad_input(imdb_cnn, tmp_path):
    projection = tmp_path / "hours.json"
    projection.write_text(json.dumps({"imdb/lstm/ticket": 120}))
    out = tmp_path / "study.md"
    sweep_dir = tmp_path / "sweeps" / "s"
    atomic.write_json(str(sweep_dir / "sweep.json"), {"runs": [{"run": imdb_cnn.name, "path": imdb_cnn.path}]})
    base = [sys.executable, "-m", "lth_tf.report.study"]
    proc = subprocess.run(base + [f"--sweep={sweep_dir}", f"--projection={projection}", f"--out={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "85.00 ± 2.48 (n=3)" in text and "projected ≈ 120 h" in text
    projection.write_text(json.dumps({"imdb/cnn/lottery": 3}))
    for args, message in (([f"--run_dirs={tmp_path / 'nope'}", f"--out={out}"], "--run_dirs"),
                          ([f"--run_dirs={imdb_cnn.path}"], "--out"),
                          ([f"--run_dirs={imdb_cnn.path}", f"--projection={projection}", f"--out={out}"],
                           "unknown keys")):
        proc = subprocess.run(base + args, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("valid", [[[0.86, 0.87, 0.85, 0.80]], VALID], ids=["n=1", "n=3"])
def test_plots_are_written_for_one_and_three_replicates(tmp_path, valid):
    cfg = config(levels=len(valid[0]) - 1, replicates=len(valid))
    an = report.analyse(report.records(grid(valid, branches=("ticket", "reinit", "random_mask"))), 12_000, 10_000)
    paths = plots.write_plots(an, cfg, summary.title(cfg, len(valid)), str(tmp_path))
    assert [os.path.basename(p) for p in paths] == [rundir.ACCURACY_PLOT, rundir.SPARSITY_PLOT]
    assert all(_png(p) for p in paths)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(atomic.TMP_PREFIX)]


def test_write_report_keeps_results_and_adds_statistics_tensorboard(imdb_cnn):
    cfg = imdb_cnn.config()
    metrics = imdb_cnn.finished_metrics()
    logs = []
    report.write_report(imdb_cnn, cfg, metrics, log=logs.append)
    results = json.load(open(imdb_cnn.file(rundir.RESULTS_JSON)))
    assert set(results) == {"settings", "records", "statistics"}
    assert set(results["records"][0]) == set(report.RECORD_FIELDS) | {"sparsity_by_tensor", "cpu"}
    assert results["statistics"]["chosen_level"] == 2 and results["statistics"]["sparsest_matching_level"] == 2
    text = open(imdb_cnn.file(rundir.SUMMARY)).read()
    assert logs == [text] and "Ticket chosen by validation accuracy: level 2" in text
    assert "every replicate at level 2: r0: valid 87.10, test 86.10; r1: valid 86.00, test 85.00; r2:" in text
    assert "Matching rule" in text and "Choice rule" in text and "± " in text
    assert "The study's own numbers (study (one seed, picked on test)" in text
    assert "ticket − reinit at level 2 (paired): valid +2.00 ± 0.00, test +2.00 ± 0.00 (n=3)" in text
    tb = imdb_cnn.file(rundir.TENSORBOARD)
    assert os.listdir(os.path.join(tb, "r0", "reinit", "level_01"))
    assert [f for f in os.listdir(tb) if f.startswith("events")]  # the HParams experiment
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(tb, "r1", "ticket", "level_02"), size_guidance={"tensors": 0}).Reload()
    assert {"epoch/train_loss", "epoch/valid_accuracy", "task/test_accuracy"} <= set(acc.Tags()["tensors"])
    assert [e.step for e in acc.Tensors("epoch/train_loss")] == [1, 2]
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    hparams = data.session_start_info.hparams
    assert hparams["branch"].string_value == "ticket" and hparams["level"].number_value == 2
    assert hparams["replicate"].number_value == 1 and hparams["dataset"].string_value == "imdb"
    root = EventAccumulator(tb, size_guidance={"tensors": 0}).Reload()
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        root.SummaryMetadata("_hparams_/experiment").plugin_data.content).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"task/valid_accuracy", "task/test_accuracy"}


def test_sweep_report_uses_the_same_rules(imdb_cnn, tmp_path):
    single = make_run(tmp_path / "single", config(levels=2, replicates=1), grid([[0.86, 0.87, 0.85]]))
    path = report.write_sweep_report(str(tmp_path / "sweeps" / "x"), [(imdb_cnn, ["--seed=0"]), (single, [])])
    rows = json.load(open(tmp_path / "sweeps" / "x" / "sweep.json"))["runs"]
    assert [r["chosen_level"] for r in rows] == [2, 1] and rows[0]["tasks_done"] == 3 * (1 + 4 * 2)
    assert {t["level"] for t in rows[0]["ticket"]} == {2} and len(rows[0]["ticket"]) == 3
    text = open(path).read()
    assert "| 3 | 85.00 ± 2.48 | 2 (36.00%) |" in text and "| 1 | 85.00 [84.29, 85.69] | 1 (20.00%) |" in text


def test_a_band_names_each_kind_of_interval_it_draws():
    from lth_tf.report.stats import Estimate

    t2 = Estimate(0.01, 0.0, 0.02, 2, "t")
    one = Estimate(0.01, 0.0, 0.02, 1, "newcombe", 12_000)
    assert plots._band_label([t2, one, one]) == "95% t-interval, n=2; 95% Newcombe interval, n=1"
    assert plots._band_label([Estimate(0.5, None, None, 1)]) == "no interval (n=1, set size unknown)"


def test_the_total_names_task_time_settings_and_cpus():
    from lth_tf.config import RunConfig, TrainConfig
    from lth_tf.report.analysis import analyse

    def rec(rep, branch, level, seconds, cpu):
        return {"replicate": rep, "branch": branch, "level": level, "sparsity": 0.0, "remaining": 1.0,
                "valid_accuracy": 0.8, "test_accuracy": 0.8, "seconds": seconds, "cpu": cpu}
    an = analyse([rec(0, "ticket", 0, 1800, "A"), rec(0, "ticket", 1, 1800, "A"), rec(0, "reinit", 1, 3600, "")])
    line = summary.total_time(an, RunConfig(train=TrainConfig(threads=2, precision="bfloat16")))
    assert line.startswith("Total: 2.00 h of task time over 3 finished tasks")  # level 0 counted once
    assert "bfloat16, 2 thread(s) per task" in line and "CPUs: A (2), not recorded (1)." in line


def test_the_epoch_table_shows_best_and_trained_epochs_per_branch():
    from lth_tf.report.analysis import analyse

    def rec(rep, branch, level, best, trained):
        return {"replicate": rep, "branch": branch, "level": level, "sparsity": 0.0, "remaining": 1.0,
                "valid_accuracy": 0.8, "test_accuracy": 0.8, "best_epoch": best, "epochs_trained": trained}
    an = analyse([rec(0, "ticket", 0, 2, 4), rec(1, "ticket", 0, 3, 5), rec(0, "ticket", 1, 1, 3),
                  rec(1, "ticket", 1, 2, 4), rec(0, "reinit", 1, 6, 8)])
    rows = [line for line in summary.epoch_table(an) if line.startswith("| ") and not line.startswith("| level")]
    assert rows == ["| 0 | 2.5 / 4.5 | 2.5 / 4.5 |", "| 1 | 1.5 / 3.5 | 6 / 8 |"]


def test_a_dense_band_wider_than_the_panel_is_written_out_and_controls_get_no_band_at_level_0():
    plt = plots._pyplot()
    wide = [[0.88, 0.88, 0.87, 0.86], [0.80, 0.85, 0.86, 0.85]]  # two dense networks 8 points apart: t on 1 df
    for valid, written_out in ((wide, True), (VALID, False)):
        an = report.analyse(report.records(grid(valid, branches=("ticket", "reinit"))), 12_000, 10_000)
        fig, ax = plt.subplots()
        plots._panel(ax, an, "valid", None)
        labels = ax.get_legend_handles_labels()[1]
        notes = [t.get_text() for t in ax.texts]
        assert (any("wider than the axes" in n for n in notes) == written_out
                and any(lab.startswith("dense: 95%") for lab in labels) != written_out), (notes, labels)
        for band in ax.collections:  # every branch band starts at level 1 (x = 80% remaining)
            assert band.get_paths()[0].vertices[:, 0].max() <= 80.0 + 1e-9
        plt.close(fig)


def test_the_validation_difference_panel_draws_the_matching_margin_the_test_panel_does_not():
    plt = plots._pyplot()
    an = report.analyse(report.records(grid(VALID, branches=("ticket", "reinit"))), 12_000, 10_000)
    for key, drawn in (("valid", True), ("test", False)):
        fig, ax = plt.subplots()
        plots._difference_panel(ax, an, key, None)
        levels = [line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == ":"]
        assert (levels == [-100 * analysis.MATCH_MARGIN]) == drawn and ax.get_ylim()[0] < -100 * analysis.MATCH_MARGIN
        plt.close(fig)


def test_the_last_level_is_labelled_without_overlapping_its_neighbour():
    for levels, shown in ((10, list(range(11))), (19, [0, 2, 4, 6, 8, 10, 12, 14, 16, 19]),
                          (18, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])):
        an = report.analyse(report.records(grid([[0.85] * (levels + 1)])), 12_000, 10_000)
        assert plots._level_ticks(an)[1] == shown
