"""Figures of the mask analysis (lth_tf.instruments.masks), written atomically as PNG:

- overlap_replicates.png: shared fraction of survivors between replicates per tensor vs level (solid), and
  what random masks of the same per-tensor sparsity would share (dashed), one panel per branch;
- embedding_by_frequency.png: fraction of a word's embedding row alive vs its frequency rank (log2 bins:
  mean, band = 25th-75th percentile of the rows), one line per shown level, the embedding's density dotted;
- filter_survival.png: per conv kernel, filters sorted by survival (mean over replicates of the sorted
  curves), one line per shown level, density +- 2 random sd shaded;
- gate_survival.png: per LSTM kernel / recurrent kernel, the fraction alive per gate (i, f, c, o) vs level,
  the tensor's density dashed.
"""
from __future__ import annotations

import os

import numpy as np

from lth_tf import atomic
from lth_tf.instruments import overlap as ov

GATE_COLOURS = {"i": "tab:blue", "f": "tab:orange", "c": "tab:green", "o": "tab:red"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str, plt) -> str:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _colours(n: int):
    plt = pyplot()
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def overlap_plot(result: dict, path: str) -> str | None:
    by_branch = result["replicate_overlap"]
    if not by_branch:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(by_branch), figsize=(6.2 * len(by_branch), 4.8), squeeze=False)
    for ax, (branch, by_level) in zip(axes[0], by_branch.items()):
        levels = [int(k) for k in by_level]
        tensors = list(next(iter(by_level.values()))["tensors"])
        colours = plt.get_cmap("tab10" if len(tensors) <= 10 else "tab20")
        for i, name in enumerate(tensors):
            shared = [by_level[str(lv)]["tensors"].get(name, {}).get("shared") for lv in levels]
            chance = [by_level[str(lv)]["tensors"].get(name, {}).get("shared_random") for lv in levels]
            c = colours(i % colours.N)
            ax.plot(levels, [np.nan if v is None else 100 * v for v in shared], marker="o", ms=3, color=c, label=name)
            ax.plot(levels, [np.nan if v is None else 100 * v for v in chance], ls="--", lw=1, color=c)
        ax.set_yscale("log")
        ax.set_xlabel("level")
        ax.set_ylabel("survivors shared by two replicates (%, log)")
        ax.set_title(f"{branch}: solid = observed, dashed = random masks of the same sparsity", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6.5, ncol=2)
    fig.suptitle(f"replicate overlap per tensor, {result['run']}", fontsize=10)
    fig.tight_layout()
    return save(fig, path, plt)


def embedding_plot(result: dict, path: str) -> str | None:
    if not result["embedding"]:
        return None
    plt = pyplot()
    branches = list(result["embedding"])
    fig, axes = plt.subplots(1, len(branches), figsize=(6.2 * len(branches), 4.8), squeeze=False, sharey=True)
    shown = [str(lv) for lv in result["shown_levels"]]
    for ax, branch in zip(axes[0], branches):
        by_level = result["embedding"][branch]
        keys = [k for k in shown if k in by_level]
        for colour, key in zip(_colours(len(keys)), keys):
            e = by_level[key]
            if not e["bins"]:
                continue
            x = np.array([np.sqrt(b["rank_low"] * max(b["rank_high"], b["rank_low"])) for b in e["bins"]])
            ax.plot(x, [100 * b["mean"] for b in e["bins"]], marker="o", ms=3, color=colour,
                    label=f"level {key} (density {100 * e['density']:.2f}%)")
            ax.fill_between(x, [100 * b["q25"] for b in e["bins"]], [100 * b["q75"] for b in e["bins"]],
                            color=colour, alpha=0.15)
            ax.axhline(100 * e["density"], color=colour, ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("word frequency rank (1 = most frequent; log2 bins)")
        ax.set_ylabel("row weights alive (%): bin mean, band = 25-75th pct")
        ax.set_title(f"{branch}: dotted = the embedding's density (random mask)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"embedding survival by word frequency, {result['run']}", fontsize=10)
    fig.tight_layout()
    return save(fig, path, plt)


def filter_plot(result: dict, path: str) -> str | None:
    if not result["filters"]:
        return None
    branch = result["branches"][0] if result["branches"][0] in result["filters"] else next(iter(result["filters"]))
    by_level = result["filters"][branch]
    shown = [str(lv) for lv in result["shown_levels"] if str(lv) in by_level]
    tensors = list(by_level[shown[0]]) if shown else []
    if not tensors:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tensors), figsize=(4.6 * len(tensors), 4.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], tensors):
        for colour, key in zip(_colours(len(shown)), shown):
            f = by_level[key][name]
            curve = 100 * np.asarray(f["sorted_mean"])
            ax.plot(np.arange(1, curve.size + 1), curve, color=colour, label=f"level {key}")
            lo, hi = f["density"] - 2 * f["random_sd"], f["density"] + 2 * f["random_sd"]
            ax.axhspan(100 * max(lo, 0.0), 100 * min(hi, 1.0), color=colour, alpha=0.1)
        ax.set_xlabel("filter (sorted by survival)")
        ax.set_ylabel("kernel weights alive (%)")
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{branch}: survival per filter (band: density +- 2 sd of random masks), {result['run']}",
                 fontsize=10)
    fig.tight_layout()
    return save(fig, path, plt)


def gate_plot(result: dict, path: str) -> str | None:
    if not result["gates"]:
        return None
    branch = result["branches"][0] if result["branches"][0] in result["gates"] else next(iter(result["gates"]))
    by_level = result["gates"][branch]
    levels = sorted(int(k) for k in by_level)
    tensors = [n for n in by_level[str(levels[0])] if not n.endswith("/bias")] or list(by_level[str(levels[0])])
    plt = pyplot()
    cols = min(4, len(tensors))
    rows = -(-len(tensors) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.6 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.ravel(), tensors):
        for gate in ov.KERAS_GATES:
            ax.plot(levels, [100 * by_level[str(lv)][name][gate] for lv in levels], marker="o", ms=2.5,
                    color=GATE_COLOURS[gate], label=gate)
        ax.plot(levels, [100 * by_level[str(lv)][name]["density"] for lv in levels], ls="--", color="black",
                lw=1, label="density")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("level")
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(tensors):]:
        ax.axis("off")
    axes[0][0].set_ylabel("weights alive (%, log)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{branch}: survival per LSTM gate (Keras order i, f, c, o), {result['run']}", fontsize=10)
    fig.tight_layout()
    return save(fig, path, plt)


def write_all(result: dict, out: str) -> dict[str, str]:
    from lth_tf.instruments import masks as m

    made = {"overlap": overlap_plot(result, os.path.join(out, m.OVERLAP_PLOT)),
            "embedding": embedding_plot(result, os.path.join(out, m.EMBEDDING_PLOT)),
            "filters": filter_plot(result, os.path.join(out, m.FILTER_PLOT)),
            "gates": gate_plot(result, os.path.join(out, m.GATE_PLOT))}
    return {k: v for k, v in made.items() if v}
