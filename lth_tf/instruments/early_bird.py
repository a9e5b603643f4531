"""Early-bird report of a run: `python -m lth_tf.instruments.early_bird --run_dir=DIR [--out=DIR/early_bird]`.

Reads the finished tasks' metrics.json (never TensorFlow) and their "early_bird" checks (lth_tf.lottery.
early_bird: recorded with --early_bird, and always by the early_bird branch), and writes early_bird.md,
early_bird.json and early_bird.png (the distance over training per level) with lth_tf.atomic:

1. per task: where the mask converged (the distance below the threshold for `patience` checks in a row), the
   steps it trained, the share of them a stop there would have saved, and what the checks cost;
2. with the early_bird and early_bird_ticket branches: at each level, early_bird_ticket (the early-bird
   mask trained fully) against the ticket (the full IMP mask) at the same sparsity: accuracies, and the
   optimizer steps each ticket cost from θ0: IMP trains every level 0..L fully; the early-bird trajectory
   trains the dense level fully (shared), levels 1..L-1 until their mask converged, and level L fully.
"""
from __future__ import annotations

import os

from absl import flags

from lth_tf import cli
from lth_tf.config import BRANCHES
from lth_tf.errors import UserError
from lth_tf.instruments import report_files
from lth_tf.instruments.plots import pyplot, save
from lth_tf.lottery.early_bird import NAME
from lth_tf.rundir import EARLY_BIRD_REPORT, RunDir

COMMAND = "lth_tf.instruments.early_bird"
SUMMARY = "Early-bird report of a run: mask distance over training, convergence, early-bird vs IMP tickets."
MARKDOWN, JSON, FIGURE = "early_bird.md", "early_bird.json", "early_bird.png"
TRAJECTORY, FULL = "early_bird", "early_bird_ticket"


def _task(m: dict) -> dict:
    keep = ("replicate", "branch", "level", "sparsity", "steps", "epochs_trained", "seconds", "valid_accuracy",
            "test_accuracy")
    return {k: m.get(k) for k in keep}


def convergence(m: dict) -> dict:
    """One task's checks summed up: where its mask converged and what stopping there saves, what checks cost."""
    e = m[NAME]
    converged = e["converged_step"]
    return dict(_task(m), threshold=e["threshold"], patience=e["patience"], every_steps=e["every_steps"],
                stopped=e["stopped"], checks=len(e["checks"]), converged_step=converged,
                converged_epoch=e["converged_epoch"],
                saved=None if converged is None or not m["steps"] else 1.0 - converged / m["steps"],
                check_seconds=e["check_seconds"], overhead=e["check_seconds"] / m["seconds"] if m["seconds"] else None,
                curve=[[c["step"], c["distance"]] for c in e["checks"]])


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def compare(metrics: list[dict]) -> list[dict]:
    """Per level: early_bird_ticket vs ticket (mean over the replicates that have both and every early_bird
    level before), with each ticket's steps from θ0 (see the module's docstring)."""
    by = {(m["replicate"], m["branch"], m["level"]): m for m in metrics}
    rows = []
    for level in sorted({m["level"] for m in metrics if m["branch"] == FULL}):
        pairs = []
        for r in sorted({m["replicate"] for m in metrics}):
            needed = [(r, "ticket", lvl) for lvl in range(level + 1)] + [(r, FULL, level)] + \
                     [(r, TRAJECTORY, lvl) for lvl in range(1, level)]
            if all(k in by for k in needed):
                imp = sum(by[(r, "ticket", lvl)]["steps"] for lvl in range(level + 1))
                early = by[(r, "ticket", 0)]["steps"] + sum(by[(r, TRAJECTORY, lvl)]["steps"]
                                                            for lvl in range(1, level)) + by[(r, FULL, level)]["steps"]
                pairs.append((by[(r, "ticket", level)], by[(r, FULL, level)], imp, early))
        if not pairs:
            continue
        rows.append({"level": level, "replicates": len(pairs),
                     "sparsity": _mean([t["sparsity"] for t, _, _, _ in pairs]),
                     **{f"{who}_{split}_accuracy": _mean([p[i][f"{split}_accuracy"] for p in pairs])
                        for i, who in ((0, "ticket"), (1, "early_bird")) for split in ("valid", "test")},
                     "ticket_steps": _mean([p[2] for p in pairs]), "early_bird_steps": _mean([p[3] for p in pairs]),
                     "saved": _mean([1.0 - p[3] / p[2] for p in pairs])})
    return rows


def _order(m: dict) -> tuple:
    branch = BRANCHES.index(m["branch"]) if m["branch"] in BRANCHES else len(BRANCHES)
    return branch, m["branch"], m["level"], m["replicate"]


def analyse(run: RunDir) -> dict:
    metrics = run.finished_metrics()
    watched = [m for m in metrics if NAME in m]
    if not watched:
        raise UserError(f"--run_dir={run.path}: no finished task recorded early-bird checks; run lth_tf.main with "
                        f"--early_bird or --branches=ticket,early_bird,early_bird_ticket (a run made without them "
                        f"records nothing in the levels it has finished: use a fresh --output_dir)")
    first = watched[0][NAME]
    return {"run": run.name, "path": os.path.abspath(run.path), "threshold": first["threshold"],
            "patience": first["patience"], "every_steps": first["every_steps"],
            "tasks": [convergence(m) for m in sorted(watched, key=_order)],
            "comparison": compare(metrics)}


# ------------------------------------------------------------------------------------------- writing ---
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(result: dict, figure: str | None) -> str:
    every = f"and every {result['every_steps']} steps" if result["every_steps"] else "(no mid-epoch checks)"
    lines = [f"# Early-bird report: {result['run']}", "",
             f"After every epoch {every}, the mask the next pruning round would draw from the current weights, "
             f"against the one drawn at the previous check: normalised Hamming distance over the level's surviving "
             f"positions. Converged: below {result['threshold']:g} for {result['patience']} checks in a row. "
             f"*saved* = the share of the task's steps after convergence; *checks* = their time over the task's.", "",
             "| branch | level | replicate | sparsity % | checks | converged at step (epoch) | steps trained | "
             "saved % | checks % of time | stopped there |", "|---|---|---|---|---|---|---|---|---|---|"]
    for t in result["tasks"]:
        at = "-" if t["converged_step"] is None else f"{t['converged_step']} ({t['converged_epoch']})"
        lines.append(f"| {t['branch']} | {t['level']} | {t['replicate']} | {_pct(t['sparsity'])} | {t['checks']} | "
                     f"{at} | {t['steps']} | {_pct(t['saved'])} | {_pct(t['overhead'])} | "
                     f"{'yes' if t['stopped'] else 'no'} |")
    lines += ["", "## Early-bird ticket vs IMP ticket at the same sparsity", ""]
    if not result["comparison"]:
        lines += ["Needs the early_bird and early_bird_ticket branches (`--branches=ticket,early_bird_ticket`): "
                  "none finished here.", ""]
    else:
        lines += ["Steps: optimizer steps each ticket cost from θ0 (IMP: levels 0..L trained fully; early bird: "
                  "the dense level, levels 1..L-1 until their mask converged, level L fully). Mean over replicates.",
                  "", "| level | sparsity % | n | ticket valid % | early-bird valid % | ticket test % | "
                  "early-bird test % | ticket steps | early-bird steps | compute saved % |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c in result["comparison"]:
            lines.append(f"| {c['level']} | {_pct(c['sparsity'])} | {c['replicates']} | "
                         f"{_pct(c['ticket_valid_accuracy'])} | {_pct(c['early_bird_valid_accuracy'])} | "
                         f"{_pct(c['ticket_test_accuracy'])} | {_pct(c['early_bird_test_accuracy'])} | "
                         f"{c['ticket_steps']:.0f} | {c['early_bird_steps']:.0f} | {_pct(c['saved'])} |")
        lines.append("")
    if figure:
        lines += [f"![early-bird distance]({figure})", ""]
    return "\n".join(lines)


def figure(result: dict, path: str) -> str:
    plt = pyplot()
    branches = list(dict.fromkeys(t["branch"] for t in result["tasks"]))
    fig, axes = plt.subplots(1, len(branches), figsize=(6.2 * len(branches), 4.6), squeeze=False, sharey=True)
    top = max(t["level"] for t in result["tasks"]) or 1
    cmap = plt.get_cmap("viridis")
    for ax, branch in zip(axes[0], branches):
        for t in (t for t in result["tasks"] if t["branch"] == branch):
            steps, distances = zip(*t["curve"]) if t["curve"] else ((), ())
            colour = cmap(0.9 * t["level"] / top)
            ax.plot(steps, distances, marker="o", ms=2.5, lw=1, color=colour,
                    label=f"level {t['level']}" if t["replicate"] == min(x["replicate"] for x in result["tasks"])
                    else None)
            if t["converged_step"] is not None:
                ax.plot([t["converged_step"]], [distances[steps.index(t["converged_step"])]], marker="*", ms=10,
                        color=colour)
        ax.axhline(result["threshold"], ls="--", lw=1, color="tab:red")
        ax.set_xlabel("training step of the level")
        ax.set_ylabel("distance to the previous check's mask")
        ax.set_title(f"{branch}: * = converged, dashed = threshold", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"early-bird mask distance, {result['run']}", fontsize=10)
    fig.tight_layout()
    return save(fig, path, plt)


def write(result: dict, out: str, plots: bool = True) -> dict[str, str]:
    """Write early_bird.md, early_bird.json and the figure into `out` (atomically); returns their paths."""
    return report_files.write(result, out, (MARKDOWN, JSON, FIGURE), markdown, figure, plots)


# ------------------------------------------------------------------------------------------- command ---
FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("run_dir", "", "The run directory (written by lth_tf.main).", module_name=COMMAND)
    flags.DEFINE_string("out", "", "Where to write the report; empty = <run_dir>/early_bird.", module_name=COMMAND)


def main() -> int:
    run = RunDir.open(FLAGS.run_dir)
    written = write(analyse(run), FLAGS.out or run.file(EARLY_BIRD_REPORT))
    print(f"early-bird report of {run.path} written to {written['markdown']}", flush=True)
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
