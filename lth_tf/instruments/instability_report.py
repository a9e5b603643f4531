"""The instability analysis as files: instability.md, instability.json and instability.png (instability
against the rewind step; the error along each step's path), written atomically. `write(result, out)` takes
lth_tf.instruments.instability.analyse's result."""
from __future__ import annotations

from lth_tf.instruments import report_files
from lth_tf.instruments.plots import pyplot, save

MARKDOWN, JSON, FIGURE = "instability.md", "instability.json", "instability.png"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown(result: dict, figure: str | None) -> str:
    sparsity = "" if result["sparsity"] is None else f" (sparsity {_pct(result['sparsity'])}%)"
    copies = ("the SAME data order and dropout (--identical_copies: a check, instability must be 0)"
              if result["identical_copies"] else "different data orders and dropout seeds")
    lines = [f"# Instability analysis: {result['run']}, level {result['level']}{sparsity}", "",
             f"From each rewind step (level 0's weights at that step), two copies of level {result['level']}'s "
             f"ticket mask trained like a level with {copies}; their weights interpolated at {result['points']} "
             f"evenly spaced points, each evaluated on the validation split. **Instability** = the largest error on "
             f"the path minus the mean of its end points' errors (percentage points), mean over replicate(s) "
             f"{', '.join(map(str, result['replicates']))}; stable below {result['threshold']:g} points. Loss "
             f"barrier: the same for the validation loss.", "",
             "| rewind step | iteration | rewind point valid acc % | copy valid acc % | max error on path % | "
             "instability (points) | loss barrier | stable |", "|---|---|---|---|---|---|---|---|"]
    for row in result["steps"]:
        reps = row["replicates"]
        start = ", ".join(_pct(p["rewind_valid_accuracy"]) for p in reps)
        ends = "; ".join(" / ".join(_pct(c["valid_accuracy"]) for c in p["copies"].values()) for p in reps)
        worst = ", ".join(f"{100 * max(p['path']['valid_error']):.2f}" for p in reps)
        lines.append(f"| {row['step']} | {row['iteration']} | {start} | {ends} | {worst} | "
                     f"{row['instability']:.2f} | {row['loss_barrier']:.4f} | {'yes' if row['stable'] else 'no'} |")
    best = result["recommended"]
    lines += ["", f"**Recommended rewind step: {best}** (iteration {result['recommended_iteration']}), the earliest "
                  f"whose instability is below {result['threshold']:g} points." if best else
              f"**No rewind step is stable**: every instability is {result['threshold']:g} points or more; try later "
              f"steps.", ""]
    lines += ["## Error along the path (%, mean over replicates)", "",
              "| rewind step | " + " | ".join(f"α={a:.2g}" for a in result["alpha"]) + " |",
              "|---|" + "---|" * len(result["alpha"])]
    lines += [f"| {row['step']} | " + " | ".join(f"{e:.2f}" for e in row["mean_error"]) + " |"
              for row in result["steps"]]
    if figure:
        lines += ["", f"![instability]({figure})"]
    return "\n".join(lines) + "\n"


def figure(result: dict, path: str) -> str:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    rows = result["steps"]
    x = list(range(len(rows)))
    for i, row in enumerate(rows):
        left.scatter([i] * len(row["replicates"]), [p["instability"] for p in row["replicates"]], s=14,
                     color="tab:gray", alpha=0.7, zorder=2)
    left.plot(x, [row["instability"] for row in rows], marker="o", color="tab:blue", label="mean", zorder=3)
    left.axhline(result["threshold"], ls="--", color="tab:red", lw=1, label=f"threshold {result['threshold']:g}")
    left.set_xticks(x, [f"{row['step']}\n({row['iteration']} it)" for row in rows])
    left.set_xlabel("rewind step")
    left.set_ylabel("instability (error points)")
    left.set_title(f"level {result['level']}: instability vs rewind step", fontsize=10)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    cmap = plt.get_cmap("viridis")
    for i, row in enumerate(rows):
        right.plot(result["alpha"], row["mean_error"], marker="o", ms=3, color=cmap(0.9 * i / max(1, len(rows) - 1)),
                   label=f"rewind {row['step']}")
    right.set_xlabel("interpolation α (0 = copy a, 1 = copy b)")
    right.set_ylabel("validation error % (mean over replicates)")
    right.set_title("error on the line between the two copies", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(result["run"], fontsize=9)
    fig.tight_layout()
    return save(fig, path, plt)


def write(result: dict, out: str, plots: bool = True) -> dict[str, str]:
    """Write instability.md, instability.json and the figure into `out` (atomically); returns their paths."""
    return report_files.write(result, out, (MARKDOWN, JSON, FIGURE), markdown, figure, plots)
