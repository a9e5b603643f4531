"""Results of a run: `results.json`/`.csv` (one record per replicate, branch and level), `summary.md`
(tickets chosen on VALIDATION accuracy, mean +- std over replicates, controls, the study's numbers),
plots and TensorBoard scalars. Everything is rebuilt from the tasks' metrics, so it is always complete.
"""
from __future__ import annotations

import csv
import io as _io
import os
from collections import defaultdict

import numpy as np

from lth_tf import atomic, rundir
from lth_tf.config import RunConfig

RECORD_FIELDS = ("replicate", "branch", "level", "sparsity", "sparsity_without_embedding", "remaining",
                 "valid_loss", "valid_accuracy", "test_loss", "test_accuracy", "epochs_trained", "best_epoch",
                 "steps", "seconds")

# The study's README (test accuracy %, its ticket picked on TEST accuracy), by (dataset, model):
# (dense, ticket, sparsity %) without / with its "late rewinding" (which was prune-and-fine-tune).
STUDY = {
    ("imdb", "cnn"): ((87.04, 87.55, 36.0), (87.04, 87.64, 48.8)),
    ("ag_news", "cnn"): ((89.18, 89.56, 89.3), (89.88, 89.82, 89.3)),
    ("imdb", "lstm"): ((90.60, 90.24, 86.6), (89.96, 90.49, 86.6)),
    ("ag_news", "lstm"): ((91.75, 91.89, 48.8), (91.55, 92.36, 73.8)),
}


def records(metrics: list[dict]) -> list[dict]:
    out = []
    for m in metrics:
        rec = {k: m[k] for k in RECORD_FIELDS}
        rec["sparsity_by_tensor"] = m["sparsity_by_tensor"]
        out.append(rec)
    return out


def _curves(recs: list[dict]) -> dict[str, dict[int, list[dict]]]:
    """branch -> level -> records of every replicate; level 0 (dense) belongs to every branch."""
    curves: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    branches = sorted({r["branch"] for r in recs}, key=lambda b: (b != "ticket", b))
    for r in recs:
        for b in (branches if r["level"] == 0 else [r["branch"]]):
            curves[b][r["level"]].append(r)
    return curves


def choose_level(recs: list[dict], replicate: int, branch: str = "ticket") -> int | None:
    """The ticket rule: among the pruned levels (>= 1) of one replicate and branch, the one with the highest
    VALIDATION accuracy (ties: the sparser); None if no pruned level finished. Test accuracy never chooses."""
    candidates = [r for r in recs if r["replicate"] == replicate and r["branch"] == branch and r["level"] >= 1]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r["valid_accuracy"], r["level"]))["level"]


def _ms(values) -> str:
    values = np.asarray(values, float) * 100
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def summarise(cfg: RunConfig, recs: list[dict]) -> str:
    curves = _curves(recs)
    ticket = curves["ticket"]
    replicates = sorted({r["replicate"] for r in recs})
    dense = ticket[0]
    dense_valid = {r["replicate"]: r["valid_accuracy"] for r in dense}
    e = cfg.experiment
    mode = ("prune and fine-tune from the end of dense training (--finetune)" if e.finetune else
            f"late rewinding to {e.rewind_step} of level 0 (--late_rewind)" if e.late_rewind else
            "winning ticket: survivors reset to θ0")
    lines = [f"# {cfg.model.model} on {cfg.data.dataset}", "",
             f"Trajectory: {mode}; {cfg.prune.strategy} pruning of {100 * cfg.prune.prune_fraction:g}% of the "
             f"surviving weights per level; {len(replicates)} replicate(s) (mean ± std over replicates).",
             "Tickets are chosen on VALIDATION accuracy; test accuracy is only reported.", ""]
    lines += [f"- Dense (level 0): valid {_ms([r['valid_accuracy'] for r in dense])}%, "
              f"test {_ms([r['test_accuracy'] for r in dense])}%"]
    pruned = {lvl: rs for lvl, rs in ticket.items() if lvl > 0}
    if pruned:
        chosen = []
        for rep in replicates:
            level = choose_level(recs, rep)
            if level is not None:
                chosen += [r for r in pruned[level] if r["replicate"] == rep]
        lines.append(f"- Ticket chosen by validation accuracy: test {_ms([c['test_accuracy'] for c in chosen])}% "
                     f"at sparsity {_ms([c['sparsity'] for c in chosen])}% "
                     f"(levels {', '.join(str(c['level']) for c in chosen)})")
        matching = [lvl for lvl, rs in sorted(pruned.items())
                    if np.mean([r["valid_accuracy"] for r in rs]) >= np.mean(list(dense_valid.values()))]
        if matching:
            lvl = max(matching)
            rs = pruned[lvl]
            lines.append(f"- Sparsest level whose mean validation accuracy matches the dense model's: level {lvl}, "
                         f"sparsity {_ms([r['sparsity'] for r in rs])}%, test {_ms([r['test_accuracy'] for r in rs])}%")
        else:
            lines.append("- No pruned level matches the dense model's mean validation accuracy.")
    study = STUDY.get((cfg.data.dataset, cfg.model.model))
    if study:
        dense_s, ticket_s, sparsity_s = study[1 if (e.finetune or e.late_rewind) else 0]
        lines += ["", f"The study's own numbers (one seed, its ticket picked on TEST accuracy): dense {dense_s}%, "
                      f"ticket {ticket_s}% at {sparsity_s}% sparsity."]
    branches = list(curves)
    lines += ["", "## Test accuracy per level (%)", "",
              "| level | sparsity % | " + " | ".join(f"{b} test" for b in branches) + " | ticket valid |",
              "|---|---|" + "---|" * len(branches) + "---|"]
    for lvl in sorted(ticket):
        cells = [_ms([r["test_accuracy"] for r in curves[b].get(lvl, [])]) if curves[b].get(lvl) else "-"
                 for b in branches]
        lines.append(f"| {lvl} | {100 * ticket[lvl][0]['sparsity']:.2f} | " + " | ".join(cells) +
                     f" | {_ms([r['valid_accuracy'] for r in ticket[lvl]])} |")
    lines += ["", "## Wall time per level (s, mean over replicates)", "",
              "| level | " + " | ".join(branches) + " |", "|---|" + "---|" * len(branches)]
    for lvl in sorted(ticket):
        cells = [f"{np.mean([r['seconds'] for r in curves[b][lvl]]):.0f}" if curves[b].get(lvl) else "-"
                 for b in branches]
        lines.append(f"| {lvl} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(recs: list[dict], run_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for branch, by_level in _curves(recs).items():
        levels = sorted(by_level)
        x = np.array([100 * np.mean([r["remaining"] for r in by_level[lvl]]) for lvl in levels])
        acc = [np.array([r["test_accuracy"] for r in by_level[lvl]]) * 100 for lvl in levels]
        mean = np.array([a.mean() for a in acc])
        std = np.array([a.std(ddof=1) if len(a) > 1 else 0.0 for a in acc])
        ax.plot(x, mean, marker="o", ms=3, label=branch)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xscale("log")
    top = max(r["level"] for r in recs)
    ticks = sorted({round(100 * np.mean([r["remaining"] for r in recs if r["level"] == lvl]), 2)
                    for lvl in range(0, top + 1, 1 if top <= 10 else 2)}, reverse=True)
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(_save(fig, os.path.join(run_dir, rundir.ACCURACY_PLOT)))
    plt.close(fig)

    ticket = [r for r in recs if r["branch"] == "ticket" and r["replicate"] == 0]
    ticket.sort(key=lambda r: r["level"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in ticket[0]["sparsity_by_tensor"]:
        ax.plot([r["level"] for r in ticket], [100 * r["sparsity_by_tensor"][name] for r in ticket], label=name)
    ax.set_xlabel("level")
    ax.set_ylabel("pruned (%)")
    ax.set_title("sparsity per tensor (ticket, replicate 0)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    paths.append(_save(fig, os.path.join(run_dir, rundir.SPARSITY_PLOT)))
    plt.close(fig)
    return paths


def _save(fig, path: str) -> str:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def tensorboard(recs: list[dict], run_dir: str) -> None:
    from lth_tf.keras import tf

    with atomic.atomic_dir(os.path.join(run_dir, rundir.TENSORBOARD)) as tmp:
        for (rep, branch), rs in _group(recs).items():
            writer = tf.summary.create_file_writer(os.path.join(tmp, f"r{rep}", branch))
            with writer.as_default():
                for r in sorted(rs, key=lambda r: r["level"]):
                    for key in ("valid_accuracy", "test_accuracy", "valid_loss", "sparsity"):
                        tf.summary.scalar(key, r[key], step=r["level"])
            writer.close()


def _group(recs):
    groups = defaultdict(list)
    for r in recs:
        groups[(r["replicate"], r["branch"])].append(r)
    return groups


def write_report(run: rundir.RunDir, cfg: RunConfig, metrics: list[dict], log=print) -> None:
    recs = records(metrics)
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS))
    writer.writeheader()
    for r in recs:
        writer.writerow({k: r[k] for k in RECORD_FIELDS})
    summary = summarise(cfg, recs)
    run.write_results({"settings": cfg.to_dict(), "records": recs}, buf.getvalue(), summary)
    plot(recs, run.path)
    tensorboard(recs, run.path)
    log(summary)


def write_sweep_report(folder: str, runs: list[tuple[rundir.RunDir, list[str]]]) -> str:
    """One table over the runs of a sweep (each run's own report is in its directory); returns its path."""
    rows, table = [], ["| run | flags | tasks done | dense test % | ticket (validation-chosen) test % | "
                       "its sparsity % (levels) |", "|---|---|---|---|---|---|"]
    for run, args in runs:
        recs = records(run.finished_metrics())
        dense = [r for r in recs if r["level"] == 0]
        chosen = []
        for rep in sorted({r["replicate"] for r in recs}):
            level = choose_level(recs, rep)
            chosen += [r for r in recs if r["replicate"] == rep and r["branch"] == "ticket" and r["level"] == level]
        rows.append({"run": run.name, "path": run.path, "flags": args, "tasks_done": len(recs),
                     "dense_test": [r["test_accuracy"] for r in dense],
                     "ticket": [{k: c[k] for k in ("replicate", "level", "sparsity", "test_accuracy")} for c in chosen]})
        table.append(f"| {run.name} | `{' '.join(args)}` | {len(recs)} | "
                     f"{_ms([r['test_accuracy'] for r in dense]) if dense else '-'} | "
                     f"{_ms([c['test_accuracy'] for c in chosen]) if chosen else '-'} | "
                     + (f"{_ms([c['sparsity'] for c in chosen])} ({', '.join(str(c['level']) for c in chosen)})"
                        if chosen else "-") + " |")
    summary = "\n".join([f"# Sweep {os.path.basename(folder)}", "",
                         f"{len(runs)} run(s); mean ± std over replicates; tickets chosen on VALIDATION accuracy.",
                         "", *table]) + "\n"
    atomic.write_json(os.path.join(folder, "sweep.json"), {"runs": rows})
    atomic.write_text(os.path.join(folder, "summary.md"), summary)
    return os.path.join(folder, "summary.md")
