"""Results of a run: `results.json`/`.csv` (one record per replicate, branch and level, plus the statistics),
`summary.md` (95% intervals, paired differences, ONE level chosen per run on VALIDATION accuracy, the
matching rule), plots and TensorBoard logs. Everything is rebuilt from the tasks' metrics, so it is always
complete. Modules: stats (intervals), analysis (per-level numbers and the two rules), summary, plots,
tensorboard, protocol (the study's table and protocol), sweep (a sweep's table), study (the study report
command, `python -m lth_tf.report.study`).
"""
from __future__ import annotations

import csv
import io as _io

from lth_tf import rundir
from lth_tf.atomic import DamagedFile
from lth_tf.config import RunConfig
from lth_tf.errors import UserError
from lth_tf.report.analysis import CHOICE_RULE, MATCH_RULE, Analysis, analyse, choose_level
from lth_tf.report.protocol import STUDY

RECORD_FIELDS = ("replicate", "branch", "level", "sparsity", "sparsity_without_embedding", "remaining",
                 "valid_loss", "valid_accuracy", "test_loss", "test_accuracy", "epochs_trained", "best_epoch",
                 "steps", "seconds")

__all__ = ["CHOICE_RULE", "MATCH_RULE", "RECORD_FIELDS", "STUDY", "Analysis", "analyse", "choose_level", "records",
           "run_analysis", "set_counts", "write_report", "write_sweep_report"]


def records(metrics: list[dict]) -> list[dict]:
    out = []
    for m in metrics:
        rec = {k: m[k] for k in RECORD_FIELDS}
        rec["sparsity_by_tensor"] = m["sparsity_by_tensor"]
        rec["cpu"] = m.get("cpu", {}).get("model", "")  # tasks before 2026-12-04 did not record it
        out.append(rec)
    return out


def set_counts(run: rundir.RunDir) -> dict | None:
    """{"train", "valid", "test"} example counts from the run's data.json; None if not recorded."""
    try:
        counts = run.data_info().get("stats", {}).get("counts")
    except (UserError, DamagedFile, OSError):
        return None
    return counts if isinstance(counts, dict) else None


def run_analysis(run: rundir.RunDir, recs: list[dict]) -> Analysis:
    counts = set_counts(run) or {}
    return analyse(recs, counts.get("valid"), counts.get("test"))


def write_report(run: rundir.RunDir, cfg: RunConfig, metrics: list[dict], log=print) -> None:
    from lth_tf.report import plots, summary, tensorboard

    recs = records(metrics)
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS))
    writer.writeheader()
    for r in recs:
        writer.writerow({k: r[k] for k in RECORD_FIELDS})
    an = run_analysis(run, recs)
    try:
        data_note = run.data_info().get("stats", {}).get("split_note", "")
    except (UserError, OSError):
        data_note = ""
    transfer = run.read_transfer()
    text = summary.summarise(cfg, an, data_note, transfer)
    run.write_results({"settings": cfg.to_dict(), "records": recs, "statistics": an.to_dict(),
                       **({"transfer": transfer} if transfer else {})}, buf.getvalue(), text)
    plots.write_plots(an, cfg, summary.title(cfg, len(an.replicates)), run.path)
    tensorboard.write_tensorboard(cfg, metrics, run.path)
    log(text)


def write_sweep_report(folder: str, runs: list[tuple[rundir.RunDir, list[str]]]) -> str:
    """One table over the runs of a sweep (each run's own report is in its directory); returns its path."""
    from lth_tf.report import sweep

    return sweep.write_sweep_report(folder, runs)
