"""The study report's Markdown: the study's two tables with our cells beside theirs, every replicate at the
chosen level, the protocol differences, and the runs used (cells: lth_tf.report.study)."""
from __future__ import annotations

from lth_tf.report import analysis as analysis_lib, protocol, verdicts
from lth_tf.report.stats import pct, points
from lth_tf.report.summary import MATCH_MARK, per_replicate

NOT_RUN = "not run"
HEADER = ("| configuration | full: study | full: ours | winning ticket: study | winning ticket: ours (level chosen "
          "on validation) | sparsity: study | sparsity: ours | ours: sparsest level matching dense | "
          "ours: protocol differences |")
RULE = "|---|---|---|---|---|---|---|---|---|"
MODE_LABEL = {"ticket": "winning ticket (survivors reset to θ0)",
              "finetune": "prune and fine-tune (--finetune: what the study's 'late rewinding' table did)",
              "late_rewind": "true late rewinding (--late_rewind) ‡"}


def _ours(cell) -> list[str]:
    an = cell.an
    if an.dense is None:
        return [NOT_RUN + " (dense level unfinished)", "-", "-", "-"]
    full = pct(an.dense.test, n=True)
    if an.chosen is None:
        return [full, "no pruned level finished", "-", "-"]
    c = an.ticket[an.chosen]
    mark = f" {MATCH_MARK}" if c.matches else ""
    ticket = f"{pct(c.test, n=True)}, level {c.level}{mark}"
    sparsity = f"{100 * c.sparsity:.1f}% (level {c.level})"
    if an.sparsest_match is None:
        match = "none"
    else:
        m = an.ticket[an.sparsest_match]
        match = f"level {m.level}: {100 * m.sparsity:.1f}% (test {pct(m.test)})"
    return [full, ticket, sparsity, match]


def _not_run(key: str, projection: dict[str, float]) -> list[str]:
    hours = projection.get(key)
    return [NOT_RUN + (f" (projected ≈ {hours:g} h of compute)" if hours is not None else ""), NOT_RUN, NOT_RUN,
            NOT_RUN]


def _row(label: str, study, cell, key: str, projection: dict[str, float]) -> str:
    ours = _ours(cell) if cell else _not_run(key, projection)
    theirs = [f"{study[0]:.2f}", f"{study[1]:.2f}", f"{study[2]:g}%"] if study else ["—", "—", "—"]
    diffs = ("; ".join(cell.differences) or "none found") if cell else ""
    return (f"| {label} | {theirs[0]} | {ours[0]} | {theirs[1]} | {ours[1]} | {theirs[2]} | {ours[2]} | {ours[3]} "
            f"| {diffs} |")


def tables(cells: dict[str, object], projection: dict[str, float]) -> list[str]:
    lines = ["## Without late rewinding (winning ticket: survivors reset to θ0)", "", HEADER, RULE]
    for dataset, model in protocol.CONFIGURATIONS:
        key = f"{dataset}/{model}/ticket"
        lines.append(_row(protocol.configuration(dataset, model), protocol.STUDY[(dataset, model)][0], cells.get(key),
                          key, projection))
    lines += ["", "## With the study's \"late rewinding\"", "",
              "The study's second table restarted every level from the weights at the END of dense training (prune "
              "and fine-tune): our --finetune rows. Rows marked ‡ are true late rewinding (survivors rewound to an "
              "early step k of dense training, Frankle et al. 2019), which the study did not tabulate: the study's "
              "cells there are empty (—).", "", HEADER, RULE]
    for dataset, model in protocol.CONFIGURATIONS:
        name = protocol.configuration(dataset, model)
        for mode in ("finetune", "late_rewind"):
            key = f"{dataset}/{model}/{mode}"
            study = protocol.STUDY[(dataset, model)][1] if mode == "finetune" else None
            label = f"{name}, fine-tune" if mode == "finetune" else f"{name}, true late rewinding ‡"
            lines.append(_row(label, study, cells.get(key), key, projection))
    return lines


def details(cell) -> list[str]:
    an = cell.an
    lines = ["", f"### {protocol.configuration(cell.dataset, cell.model)}: {MODE_LABEL[cell.mode]}", "",
             f"- Runs: {', '.join(f'`{r.path}`' for r in cell.runs)}; levels 0-{an.top_level}; "
             f"{len(an.replicates)} replicate(s)."]
    if an.dense:
        lines.append(f"- Dense (level 0): valid {pct(an.dense.valid)}, test {pct(an.dense.test)} (n={an.dense.n}); "
                     f"{per_replicate(an.dense, cell.names)}")
    if an.chosen is not None:
        c = an.ticket[an.chosen]
        verdict = {True: "matches", False: "does not match", None: "not judged (no interval)"}[c.matches]
        lines += [f"- Chosen level {c.level} (sparsity {100 * c.sparsity:.2f}%): valid {pct(c.valid)}, test "
                  f"{pct(c.test)} (n={c.n}); {verdict} the dense network (valid − dense {points(c.valid_vs_dense)}, "
                  f"test − dense {points(c.test_vs_dense)})",
                  f"  - every replicate at level {c.level}: {per_replicate(c, cell.names)}"]
        for control, by_level in an.controls.items():
            d = by_level.get(c.level)
            if d:
                lines.append(f"  - ticket − {control} (paired): valid {points(d['valid'])}, test {points(d['test'])}")
    if cell.differences:
        lines.append(f"- Protocol differences from the study: {'; '.join(cell.differences)}.")
    lines += [f"- Note: {note}" for note in cell.notes]
    return lines


def render(cells: list, projection: dict[str, float]) -> str:
    in_study = {c.key: c for c in cells if (c.dataset, c.model) in protocol.STUDY}
    others = [c for c in cells if (c.dataset, c.model) not in protocol.STUDY]
    lines = [
        "# The study's results and ours", "",
        "Test accuracy in %. **Study**: one seed; its \"winning ticket\" is the round with the best TEST accuracy "
        "(selection on the test set: optimistic), its sparsity that round's fraction of weights pruned. **Ours**: "
        "mean ± half-width of the 95% Student-t interval over n replicates (n = 1: [95% Wilson interval of the "
        "test set's own sampling error]); the winning ticket is ONE level per run chosen on VALIDATION accuracy, "
        "and every replicate is reported at that level (never a mean of tickets taken at different levels).", "",
        f"- Choice rule: {analysis_lib.CHOICE_RULE}.",
        f"- Matching rule ({MATCH_MARK} after the ticket; last column: the sparsest such level): "
        f"{analysis_lib.MATCH_RULE}.",
        f"- \"{NOT_RUN}\": no run of that cell was given. Protocol differences compare each run's resolved settings "
        "and split sizes with the study's protocol for that configuration.", ""]
    lines += tables(in_study, projection)
    lines += [""] + verdicts.section(list(in_study.values()) + others)
    lines += ["", "## Every replicate at the chosen level"]
    for cell in sorted(in_study.values(), key=lambda c: (protocol.CONFIGURATIONS.index((c.dataset, c.model)),
                                                          protocol.MODES.index(c.mode))):
        lines += details(cell)
    if others:
        lines += ["", "## Other runs given (not configurations of the study's tables)"]
        for cell in others:
            lines += details(cell)
    return "\n".join(lines) + "\n"
