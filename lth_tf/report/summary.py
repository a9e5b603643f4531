"""summary.md of one run: the rules, the chosen level with every replicate's values, the paired differences,
and per-level tables of validation and test accuracy with their intervals."""
from __future__ import annotations

import numpy as np

from lth_tf.config import RunConfig
from lth_tf.lottery.transfer import describe
from lth_tf.report import analysis as analysis_lib, protocol
from lth_tf.report.analysis import Analysis, LevelStats
from lth_tf.report.stats import pct, points

MATCH_MARK = "✓"


def reading_notes(an: Analysis) -> list[str]:
    """How to read the numbers: intervals, the matching rule and the choice rule (shared with the study report)."""
    sizes = (f" (validation N={an.valid_examples:,}, test N={an.test_examples:,})"
             if an.valid_examples and an.test_examples else " (set sizes unknown: no interval)")
    return [
        "- Accuracies in %. n ≥ 2 replicates: mean ± half-width of the 95% Student-t interval over replicates. "
        "n = 1: the value [95% Wilson score interval of the evaluation set's own sampling error]"
        f"{sizes}; that leaves out seed-to-seed variation, which is often larger.",
        "- Differences in percentage points, paired by replicate at the same level (a − b per replicate, then its "
        "mean ± 95% t-interval; n = 1: Newcombe's interval, which treats the two accuracies as independent "
        "and is therefore wide).",
        f"- Matching rule: {analysis_lib.MATCH_RULE}. Marked {MATCH_MARK}.",
        f"- Choice rule: {analysis_lib.CHOICE_RULE}. The ticket is chosen by validation accuracy; test accuracy "
        "never chooses.",
    ]


def describe_level(s: LevelStats) -> str:
    return (f"level {s.level} (sparsity {100 * s.sparsity:.2f}%, {100 * s.remaining:.3g}% of weights remaining): "
            f"valid {pct(s.valid)}, test {pct(s.test)} (n={s.n})")


def per_replicate(s: LevelStats, names: dict | None = None) -> str:
    """'r0: valid 86.10, test 85.90; r1: ...' (names: replicate -> label)."""
    return "; ".join(f"{(names or {}).get(rep, f'r{rep}')}: valid {100 * r['valid_accuracy']:.2f}, "
                     f"test {100 * r['test_accuracy']:.2f}" for rep, r in s.replicates.items())


def _matches_text(s: LevelStats) -> str:
    verdict = {True: "yes", False: "no", None: "not judged (no interval)"}[s.matches]
    return f"{verdict} (valid − dense {points(s.valid_vs_dense)})"


def result_lines(an: Analysis) -> list[str]:
    dense = an.dense
    if dense is None:
        return ["- The dense level has not finished."]
    lines = [f"- Dense (level 0): valid {pct(dense.valid)}, test {pct(dense.test)} (n={dense.n}); "
             f"{per_replicate(dense)}"]
    if an.chosen is None:
        return lines + ["- No pruned level has finished."]
    chosen = an.ticket[an.chosen]
    lines += [f"- Ticket chosen by validation accuracy: {describe_level(chosen)}; matches the dense network: "
              f"{_matches_text(chosen)}; test − dense {points(chosen.test_vs_dense)}",
              f"  - every replicate at level {an.chosen}: {per_replicate(chosen)}"]
    for control, by_level in an.controls.items():
        d = by_level.get(an.chosen)
        if d:
            lines.append(f"  - ticket − {control} at level {an.chosen} (paired): valid {points(d['valid'])}, "
                         f"test {points(d['test'])} (n={d['valid'].n})")
    if an.sparsest_match is not None:
        lines.append(f"- Sparsest level that matches the dense network: {describe_level(an.ticket[an.sparsest_match])}")
    else:
        lines.append("- No pruned level matches the dense network (matching rule above).")
    return lines


def _cell(s: LevelStats | None, key: str, mark: bool) -> str:
    if s is None:
        return "-"
    text = pct(getattr(s, key))
    return text + (f" {MATCH_MARK}" if mark and s.matches else "")


def level_tables(an: Analysis) -> list[str]:
    branches, ticket = an.branches, an.ticket
    lines = []
    for key, title in (("valid", f"Validation accuracy per level (%; {MATCH_MARK}: matches the dense network)"),
                       ("test", "Test accuracy per level (%; reported only, never used to choose)")):
        extra = " ticket − dense (valid, pp) |" if key == "valid" else " ticket − dense (test, pp) |"
        lines += ["", f"## {title}", "", "| level | sparsity % | remaining % | n | "
                  + " | ".join(branches) + " |" + extra, "|---|---|---|---|" + "---|" * (len(branches) + 1)]
        for lvl in sorted(ticket):
            s = ticket[lvl]
            cells = [_cell(an.levels[b].get(lvl), key, key == "valid") for b in branches]
            diff = points(s.valid_vs_dense if key == "valid" else s.test_vs_dense) if lvl else ""
            chosen = " ← chosen" if lvl == an.chosen else ""
            lines.append(f"| {lvl}{chosen} | {100 * s.sparsity:.2f} | {100 * s.remaining:.3g} | {s.n} | "
                         + " | ".join(cells) + f" | {diff} |")
    if an.controls:
        controls = list(an.controls)
        lines += ["", "## Ticket − control, paired by replicate (percentage points)", "",
                  "| level | " + " | ".join(f"− {c} valid | − {c} test" for c in controls) + " |",
                  "|---|" + "---|---|" * len(controls)]
        for lvl in sorted(ticket):
            if lvl == 0:
                continue
            cells = []
            for c in controls:
                d = an.controls[c].get(lvl)
                cells += [points(d["valid"]), points(d["test"])] if d else ["-", "-"]
            lines.append(f"| {lvl} | " + " | ".join(cells) + " |")
    return lines


def _branch_table(an: Analysis, heading: str, cell) -> list[str]:
    """A level x branch table: `cell(records of the replicates that finished it)` in each cell, '-' if none."""
    lines = ["", f"## {heading}", "",
             "| level | " + " | ".join(an.branches) + " |", "|---|" + "---|" * len(an.branches)]
    for lvl in sorted(an.ticket):
        cells = [cell(list(s.replicates.values())) if (s := an.levels[b].get(lvl)) else "-" for b in an.branches]
        lines.append(f"| {lvl} | " + " | ".join(cells) + " |")
    return lines


def time_table(an: Analysis, cfg: RunConfig | None = None) -> list[str]:
    lines = _branch_table(an, "Wall time per level (s, mean over replicates)",
                          lambda reps: f"{np.mean([r['seconds'] for r in reps]):.0f}")
    return lines + ["", total_time(an, cfg)]


def total_time(an: Analysis, cfg: RunConfig | None = None) -> str:
    """The run's compute in one line: task seconds summed, the settings that made them, the CPUs they ran on."""
    tasks = {(r["replicate"], r["branch"], r["level"]): r
             for by in an.levels.values() for s in by.values() for r in s.replicates.values()}
    seconds = sum(r["seconds"] for r in tasks.values())
    cpus: dict[str, int] = {}
    for r in tasks.values():
        name = r.get("cpu") or "not recorded"
        cpus[name] = cpus.get(name, 0) + 1
    made = (f"; {cfg.train.precision}, {cfg.train.threads or 'all'} thread(s) per task" if cfg else "")
    where = ", ".join(f"{name} ({k})" for name, k in sorted(cpus.items(), key=lambda kv: -kv[1]))
    return (f"Total: {seconds / 3600:.2f} h of task time over {len(tasks)} finished tasks (the sum of their own "
            f"seconds, each level's training and evaluation){made}; CPUs: {where}.")


def epoch_table(an: Analysis) -> list[str]:
    """The early-stopping epoch (the kept one) and the epochs trained, per branch and level: how fast each
    trains, the measure by which Frankle & Carbin's tickets 'learn faster'."""
    return _branch_table(an, "Best epoch / epochs trained per level (mean over replicates)",
                         lambda reps: f"{np.mean([r['best_epoch'] for r in reps]):.3g} / "
                                      f"{np.mean([r['epochs_trained'] for r in reps]):.3g}")


def title(cfg: RunConfig, n: int) -> str:
    """The configuration in one line (plots use it too)."""
    return (f"{cfg.model.model} on {cfg.data.dataset}: {cfg.rewind().describe()}; {cfg.prune.strategy} pruning "
            f"{100 * cfg.prune.prune_fraction:g}%/level; n={n} replicate(s)")


def summarise(cfg: RunConfig, an: Analysis, data_note: str = "", transfer: dict | None = None) -> str:
    """`data_note`: what the reader must know about the data (e.g. rows pooled: not the study's protocol);
    `transfer`: the run's transfer.json (lth_tf.lottery.transfer), if it started from another run's ticket."""
    reps = an.replicates
    lines = [f"# {cfg.model.model} on {cfg.data.dataset}", "",
             f"Trajectory: {cfg.rewind().describe()}; {cfg.prune.strategy} pruning of "
             f"{100 * cfg.prune.prune_fraction:g}% of the surviving weights per level; levels 0-{an.top_level}; "
             f"{len(reps)} replicate(s) (seeds {', '.join(str(cfg.experiment.seed + r) for r in reps)}).", "",
             *([f"Data: {data_note}", ""] if data_note else []),
             *([f"Transfer: {describe(transfer)}", ""] if transfer else []),
             "## How to read this", "", *reading_notes(an), "", "## Result", "", *result_lines(an)]
    study = protocol.study_row(cfg)
    if study:
        dense_s, ticket_s, sparsity_s = study
        lines += ["", f"The study's own numbers ({protocol.STUDY_LABEL}: selection on the test set, no interval): "
                      f"dense {dense_s}%, ticket {ticket_s}% at {sparsity_s}% sparsity."]
    elif (cfg.data.dataset, cfg.model.model) in protocol.STUDY:
        lines += ["", "The study has no table for true late rewinding (its 'late rewinding' was fine-tuning)."]
    lines += level_tables(an) + epoch_table(an) + time_table(an, cfg)
    return "\n".join(lines) + "\n"
