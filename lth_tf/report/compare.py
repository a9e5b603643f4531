"""Runs that differ in a setting, level by level: e.g. the pruning strategies at matched sparsity.

    python -m lth_tf.report.compare --run_dirs=runs/A,runs/B,runs/C [--branch=ticket] [--replicates=0,1] \\
        --out=compare.md

Each run is named by the settings in which the runs differ (their identities, lth_tf.config). Per level: each
run's overall sparsity, validation and test accuracy (mean and 95% interval over the replicates common to all
runs), the validation difference to the first run paired by replicate (one replicate: the Wilson and Newcombe
intervals from the evaluation sets' sizes, as in every report), and where each run put its sparsity (% of
weights kept in the embedding, the other hidden tensors and the output layer). Levels that not every run
finished are left out. Writes the Markdown, a JSON and a figure (validation accuracy and the difference to
the first run by weights remaining, lth_tf.report.plots) beside it.
"""
from __future__ import annotations

import os

import numpy as np
from absl import flags

from lth_tf import atomic, cli
from lth_tf.errors import UserError
from lth_tf.report import plots, set_counts, stats
from lth_tf.nets import EMBEDDING_LAYER, OUTPUT_LAYER
from lth_tf.rundir import RunDir, Task

COMMAND = "lth_tf.report.compare"
SUMMARY = "Compare runs that differ in a setting, level by level (accuracy with intervals, where the sparsity is)."
FLAGS = flags.FLAGS


def define_flags() -> None:
    own = {"module_name": COMMAND}
    flags.DEFINE_list("run_dirs", [], "Two or more run directories; the first is the reference.", **own)
    flags.DEFINE_string("branch", "ticket", "The branch compared (level 0, the dense level, always included).",
                        **own)
    flags.DEFINE_list("replicates", [], "Replicates to use (empty: those every run has).", **own)
    flags.DEFINE_string("out", "", "Where to write the Markdown (a .json is written beside it).", **own)


def labels(runs: list[RunDir]) -> list[str]:
    """Each run named by the identity settings in which the runs differ ('strategy=lamp, global_ranking=...')."""
    settings = [run.settings() for run in runs]
    identities = [cfg.identity() for cfg in settings]
    keys = sorted({k for ident in identities for k in ident}
                  - {k for k in identities[0] if all(i.get(k) == identities[0][k] for i in identities)})
    resolved = [{f"{s}.{f.name}": v for s, f, v in cfg.resolved().fields()} for cfg in settings]
    named = [", ".join(f"{k.split('.', 1)[1]}={ident.get(k, flat.get(k))}" for k in keys)
             for ident, flat in zip(identities, resolved)]
    return [n or run.name for n, run in zip(named, runs)]


def tensor_group(name: str) -> str:
    layer = name.split("/", 1)[0]
    return {EMBEDDING_LAYER: "embedding", OUTPUT_LAYER: "output"}.get(layer, "hidden")


def kept_by_group(record: dict, shapes: dict[str, int]) -> dict[str, float]:
    """% of weights kept per group, weighting each tensor by its size."""
    kept, size = {}, {}
    for name, sparsity in record["sparsity_by_tensor"].items():
        group = tensor_group(name)
        kept[group] = kept.get(group, 0.0) + (1 - sparsity) * shapes.get(name, 1)
        size[group] = size.get(group, 0) + shapes.get(name, 1)
    return {g: kept[g] / size[g] for g in kept}


def tensor_sizes(run: RunDir, records: list[dict]) -> dict[str, int]:
    """Each tensor's size, from a stored mask of the run (any task's)."""
    for r in records:
        try:
            return {n: int(m.size) for n, m in run.read_masks(Task(r["replicate"], r["level"], r["branch"])).items()}
        except (FileNotFoundError, OSError):
            continue
    return {}


def compare(paths: list[str], branch: str = "ticket", replicates: list[int] | None = None) -> dict:
    if len(paths) < 2:
        raise UserError("--run_dirs: give two or more run directories, comma-separated")
    runs = [RunDir.open(p) for p in paths]
    by_run = []
    for run in runs:
        recs = [m for m in run.finished_metrics() if m.get("branch") == branch or m.get("level") == 0]
        by_run.append({(m["level"], m["replicate"]): m for m in recs if "valid_accuracy" in m})
    common = set.intersection(*({rep for _, rep in d} for d in by_run))
    chosen = sorted(common if not replicates else set(replicates))
    missing = set(chosen) - common
    if missing or not chosen:
        raise UserError(f"--replicates: {sorted(missing) or 'none'} not finished by every run (common: "
                        f"{sorted(common) or 'none'})")
    levels = sorted(set.intersection(*({lvl for lvl, rep in d if rep in chosen and
                                         all((lvl, r) in d for r in chosen)} for d in by_run)))
    names = labels(runs)
    sizes = [tensor_sizes(run, list(d.values())) for run, d in zip(runs, by_run)]
    counts = [set_counts(run) or {} for run in runs]
    # a one-replicate difference gets Newcombe's interval only when both runs were judged on the same set size
    paired_examples = [c.get("valid") if c.get("valid") == counts[0].get("valid") else None for c in counts]
    rows = []
    for level in levels:
        row = {"level": level, "runs": []}
        reference_valid = {r: by_run[0][(level, r)]["valid_accuracy"] for r in chosen}
        for name, d, shapes, count, examples in zip(names, by_run, sizes, counts, paired_examples):
            recs = [d[(level, r)] for r in chosen]
            valid = {r: d[(level, r)]["valid_accuracy"] for r in chosen}
            groups = [kept_by_group(rec, shapes) for rec in recs]
            row["runs"].append({
                "run": name, "sparsity": float(np.mean([rec["sparsity"] for rec in recs])),
                "valid_accuracy": stats.accuracy(valid.values(), count.get("valid")).to_dict(),
                "test_accuracy": stats.accuracy([rec["test_accuracy"] for rec in recs], count.get("test")).to_dict(),
                "valid_minus_first": stats.paired_difference(valid, reference_valid, examples).to_dict(),
                "kept_by_group": {g: float(np.mean([k[g] for k in groups])) for g in groups[0]},
            })
        rows.append(row)
    return {"runs": [{"name": n, "path": r.path} for n, r in zip(names, runs)], "branch": branch,
            "replicates": chosen, "levels": rows}


def to_markdown(result: dict) -> str:
    est = lambda d: stats.Estimate(**d)  # noqa: E731
    runs = [r["name"] for r in result["runs"]]
    lines = [f"# {result['branch']} by level: {' vs '.join(runs)}", "",
             f"Replicates {', '.join(map(str, result['replicates']))} of every run; mean and 95% interval (± : "
             f"t over replicates; [low, high]: one replicate, Wilson / Newcombe from the set's size); the "
             f"difference to **{runs[0]}** is paired by replicate (validation, points). Kept: % of weights "
             f"left in the embedding / the other hidden tensors / the output layer.", ""]
    for r in result["runs"]:
        lines.append(f"- **{r['name']}**: `{r['path']}`")
    lines += ["", "| level | run | sparsity % | valid % | test % | valid − first (pp) | kept: embedding / hidden / output % |",
              "|---|---|---:|---:|---:|---:|---|"]
    for row in result["levels"]:
        for i, r in enumerate(row["runs"]):
            kept = " / ".join(f"{100 * r['kept_by_group'][g]:.1f}" if g in r["kept_by_group"] else "-"
                              for g in ("embedding", "hidden", "output"))
            diff = "-" if i == 0 else stats.points(est(r["valid_minus_first"]))
            lines.append(f"| {row['level'] if i == 0 else ''} | {r['run']} | {100 * r['sparsity']:.2f} | "
                         f"{stats.pct(est(r['valid_accuracy']))} | {stats.pct(est(r['test_accuracy']))} | {diff} | "
                         f"{kept} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    if not FLAGS.out:
        raise UserError("--out: where to write the comparison, e.g. --out=compare.md")
    try:
        replicates = [int(r) for r in FLAGS.replicates]
    except ValueError:
        raise UserError(f"--replicates={','.join(FLAGS.replicates)}: give replicate numbers, e.g. 0,1") from None
    result = compare(FLAGS.run_dirs, FLAGS.branch, replicates or None)
    atomic.write_json(os.path.splitext(FLAGS.out)[0] + ".json", result)
    figure = plots.comparison_plot(result, os.path.splitext(FLAGS.out)[0] + ".png")
    atomic.write_text(FLAGS.out, to_markdown(result))
    print(f"comparison of {len(result['runs'])} runs over {len(result['levels'])} levels written to {FLAGS.out} "
          f"(figure: {figure})")
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
