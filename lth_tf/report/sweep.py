"""A sweep's report: one table over its runs (summary.md) and sweep.json, with the statistics and rules of
every run's own report (lth_tf.report.analysis)."""
from __future__ import annotations

import os

from lth_tf import atomic, rundir
from lth_tf.report import analysis as analysis_lib, records, run_analysis
from lth_tf.report.stats import pct, points


def _row(run: rundir.RunDir, args: list[str]) -> tuple[dict, str]:
    recs = records(run.finished_metrics())
    an = run_analysis(run, recs)
    dense, chosen = an.dense, an.ticket.get(an.chosen) if an.chosen is not None else None
    match = an.ticket.get(an.sparsest_match) if an.sparsest_match is not None else None
    row = {"run": run.name, "path": run.path, "flags": args, "tasks_done": len(recs),
           "dense_test": [r["test_accuracy"] for r in dense.replicates.values()] if dense else [],
           "dense_valid": [r["valid_accuracy"] for r in dense.replicates.values()] if dense else [],
           "chosen_level": an.chosen, "sparsest_matching_level": an.sparsest_match,
           "ticket": [{"replicate": rep, "level": r["level"], "sparsity": r["sparsity"],
                       "valid_accuracy": r["valid_accuracy"], "test_accuracy": r["test_accuracy"]}
                      for rep, r in chosen.replicates.items()] if chosen else [],
           "dense_test_interval": dense.test.to_dict() if dense else None,
           "ticket_test_interval": chosen.test.to_dict() if chosen else None,
           "ticket_matches_dense": chosen.matches if chosen else None}
    verdict = {True: "yes", False: "no", None: "-"}[chosen.matches if chosen else None]
    line = (f"| {run.name} | `{' '.join(args)}` | {len(recs)} | {dense.n if dense else 0} | "
            f"{pct(dense.test) if dense else '-'} | "
            + (f"{chosen.level} ({100 * chosen.sparsity:.2f}%) | {pct(chosen.valid)} | {pct(chosen.test)} | "
               f"{points(chosen.valid_vs_dense)} | {verdict} | " if chosen else "- | - | - | - | - | ")
            + (f"{match.level} ({100 * match.sparsity:.2f}%) |" if match else "none |"))
    return row, line


def write_sweep_report(folder: str, runs: list[tuple[rundir.RunDir, list[str]]]) -> str:
    rows, table = [], ["| run | flags | tasks done | n | dense test % | chosen level (sparsity) | its valid % | "
                       "its test % | valid − dense (pp) | matches dense | sparsest matching level (sparsity) |",
                       "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run, args in runs:
        row, line = _row(run, args)
        rows.append(row)
        table.append(line)
    summary = "\n".join([
        f"# Sweep {os.path.basename(folder)}", "", f"{len(runs)} run(s). Accuracies in %: mean ± 95% t-interval "
        "half-width over the run's n replicates (n = 1: [95% Wilson interval of the evaluation set]).",
        f"Choice rule: {analysis_lib.CHOICE_RULE}.", f"Matching rule: {analysis_lib.MATCH_RULE}.",
        "Every run's summary.md has the per-level tables and every replicate's values.", "", *table]) + "\n"
    atomic.write_json(os.path.join(folder, "sweep.json"), {"runs": rows})
    atomic.write_text(os.path.join(folder, "summary.md"), summary)
    return os.path.join(folder, "summary.md")
