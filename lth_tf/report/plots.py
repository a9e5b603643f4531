"""The run's two figures, written atomically under rundir's names:

- accuracy vs weights remaining: validation (left) and test (right) accuracy per branch, mean over
  replicates with its labelled 95% band from level 1 on, the dense baseline (level 0) as a line with its band
  (written out when wider than the panel), the chosen level, and (test panel) the study's points; below
  each, every branch minus the dense network, paired by replicate (what the matching rule judges: a seed's
  offset cancels, so levels with fewer replicates stay comparable; the validation panel draws the rule's
  margin); log-scaled "weights remaining (%)" axis, level numbers on top. The y-range follows the means: a
  band wider than it (n = 2: a t-interval on one degree of freedom) is cut at the frame.
- pruned % per tensor: a heatmap of tensors x levels (ticket branch, mean over replicates).
- runs compared (lth_tf.report.compare): each run's validation accuracy by weights remaining, and its paired
  difference to the first run, with their 95% bands.
"""
from __future__ import annotations

import os

import numpy as np

from lth_tf import atomic, rundir
from lth_tf.config import RunConfig
from lth_tf.report import protocol
from lth_tf.report.analysis import MATCH_MARGIN, Analysis
from lth_tf.report.stats import METHODS, Estimate

COLOURS = {"ticket": "tab:blue", "reinit": "tab:orange", "random_mask": "tab:green", "study_random": "tab:red"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band_label(estimates: list[Estimate]) -> str:
    """'95% t-interval, n=3' for the band; each kind of interval with its n where levels differ
    ('95% t-interval, n=2; 95% Newcombe interval, n=1')."""
    with_interval = [e for e in estimates if e.has_interval]
    if not with_interval:
        return "no interval (n=1, set size unknown)"
    parts = []
    for method in dict.fromkeys(e.method for e in with_interval):
        ns = sorted({e.n for e in with_interval if e.method == method})
        n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        parts.append(f"{METHODS[method]}, n={n}")
    return "; ".join(parts)


def _level_ticks(an: Analysis) -> tuple[list[float], list[int]]:
    levels = sorted(an.ticket)
    step = 1 if len(levels) <= 11 else 2
    shown = [lvl for i, lvl in enumerate(levels) if i % step == 0]
    if shown[-1] != levels[-1]:  # (step 2 only) the last level labelled in place of the neighbour it would overlap
        shown[-1] = levels[-1]
    return [100 * an.ticket[lvl].remaining for lvl in shown], shown


def _curves(ax, an: Analysis, attribute: str, from_level: int = 0, bands_from_level: int = 0) -> list[float]:
    """Each branch's mean of `attribute` (an Estimate of LevelStats) per level with its band from
    `bands_from_level` on; the means drawn."""
    drawn = []
    for branch in an.branches:
        by_level = an.levels[branch]
        lv = [lvl for lvl in sorted(by_level) if lvl >= from_level]
        x = np.array([100 * by_level[lvl].remaining for lvl in lv])
        est = [getattr(by_level[lvl], attribute) for lvl in lv]
        mean = np.array([100 * e.mean for e in est])
        colour = COLOURS.get(branch)
        ax.plot(x, mean, marker="o", ms=3, color=colour, label=f"{branch}: mean")
        first = next((i for i, lvl in enumerate(lv) if lvl >= bands_from_level), len(lv))  # levels are sorted
        band = est[first:]
        if any(e.has_interval for e in band):
            low = np.array([100 * (e.low if e.has_interval else e.mean) for e in band])
            high = np.array([100 * (e.high if e.has_interval else e.mean) for e in band])
            ax.fill_between(x[first:], low, high, color=colour, alpha=0.18, label=f"{branch}: {_band_label(band)}")
        drawn += list(mean)
    return drawn


def _fit_to(ax, values: list[float], margin: float) -> None:
    """A y-range around the drawn means (bands wider than it are cut at the frame)."""
    if values:
        low, high = min(values), max(values)
        pad = max(margin, 0.25 * (high - low))
        ax.set_ylim(low - pad, high + pad)


def _panel(ax, an: Analysis, key: str, study: tuple | None) -> None:
    # Level 0 is the dense network for every branch: its interval is the dense band, not one band per branch.
    drawn = _curves(ax, an, key, bands_from_level=1)
    dense = an.dense
    if dense is not None:
        d = getattr(dense, key)
        ax.axhline(100 * d.mean, color="black", ls="--", lw=1, label=f"dense (level 0): mean, n={d.n}")
    if an.chosen is not None:
        c = an.ticket[an.chosen]
        ax.plot([100 * c.remaining], [100 * getattr(c, key).mean], marker="*", ms=14, color="gold", mec="black",
                ls="none", label=f"chosen on validation: level {an.chosen}", zorder=5)
    if study and key == "test":
        dense_s, ticket_s, sparsity_s = study
        ax.plot([100.0, 100.0 - sparsity_s], [dense_s, ticket_s], marker="D", ms=7, ls="none", color="purple",
                label=f"{protocol.STUDY_LABEL}: dense, ticket", zorder=5)
        drawn += [dense_s, ticket_s]
    _fit_to(ax, drawn, margin=2.0)
    if dense is not None and d.has_interval:
        _dense_band(ax, d)
    _level_axes(ax, an, study)
    ax.set_ylabel(f"{'validation' if key == 'valid' else 'test'} accuracy (%)")


def _dense_band(ax, d: Estimate) -> None:
    """The dense network's band; one wider than the whole y-range (n = 2: a t-interval on one degree of freedom)
    would grey the panel and hide nothing but the curves, so it is written out instead."""
    low, high = ax.get_ylim()
    label = f"dense: {_band_label([d])}"
    if 100 * d.low <= low and 100 * d.high >= high:
        ax.text(0.01, 0.02, f"{label}: {100 * d.low:.1f}-{100 * d.high:.1f}, wider than the axes",
                transform=ax.transAxes, fontsize=7, color="dimgrey", va="bottom")
    else:
        ax.axhspan(100 * d.low, 100 * d.high, color="grey", alpha=0.15, label=label)


def _difference_panel(ax, an: Analysis, key: str, study: tuple | None) -> None:
    drawn = _curves(ax, an, f"{key}_vs_dense", from_level=1)
    ax.axhline(0.0, color="black", ls="--", lw=1)
    if key == "valid":  # the matching rule judges validation: a level matches where its band stays above this
        ax.axhline(-100 * MATCH_MARGIN, color="black", ls=":", lw=1,
                   label=f"matching margin (−{100 * MATCH_MARGIN:g} point, validation)")
    _fit_to(ax, drawn + [0.0, -100 * MATCH_MARGIN], margin=1.0)
    _level_axes(ax, an, study, top_labels=False)
    ax.set_ylabel(f"{'validation' if key == 'valid' else 'test'}: branch − dense,\npaired by replicate (points)")


def _level_axes(ax, an: Analysis, study: tuple | None, top_labels: bool = True) -> None:
    ticks, shown = _level_ticks(an)
    xs = [100 * s.remaining for b in an.levels.values() for s in b.values()]
    if study:
        xs.append(100.0 - study[2])
    _remaining_axis(ax, ticks, shown, xs, top_labels)


def _remaining_axis(ax, ticks: list[float], shown: list[int], xs: list[float], top_labels: bool) -> None:
    """Weights remaining (%) on a log scale, sparser to the right, with the levels `shown` at `ticks` on top."""
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlim(max(xs) * 1.15, min(xs) / 1.15)  # inverted: sparser to the right
    top = ax.twiny()
    top.set_xscale("log")
    top.set_xlim(ax.get_xlim())
    top.set_xticks(ticks)
    top.set_xticklabels([str(lvl) for lvl in shown] if top_labels else [])
    top.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if top_labels:
        top.set_xlabel("level")
    ax.set_xlabel("weights remaining (%, log scale)")
    ax.grid(True, which="major", alpha=0.3)


def accuracy_plot(an: Analysis, cfg: RunConfig, title: str, path: str) -> str:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.4), height_ratios=(3, 2))
    study = protocol.study_row(cfg)
    for column, key in enumerate(("valid", "test")):
        _panel(axes[0, column], an, key, study)
        _difference_panel(axes[1, column], an, key, study)
        axes[0, column].set_title("validation (chooses the level)" if key == "valid" else "test (reported only)",
                                  fontsize=10)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle(title, fontsize=10)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
    rows = -(-len(labels) // 3)
    fig.tight_layout(rect=(0, 0.021 * rows + 0.01, 1, 0.97))
    return _save(fig, path, plt)


def sparsity_plot(an: Analysis, title: str, path: str) -> str:
    plt = _pyplot()
    levels = sorted(an.ticket)
    names = list(next(iter(an.ticket[levels[0]].replicates.values()))["sparsity_by_tensor"])
    grid = np.array([[100 * np.mean([r["sparsity_by_tensor"].get(name, np.nan)
                                     for r in an.ticket[lvl].replicates.values()]) for lvl in levels]
                     for name in names])
    fig, ax = plt.subplots(figsize=(max(6.5, 0.45 * len(levels) + 4), max(3.0, 0.32 * len(names) + 1.8)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels([str(lvl) for lvl in levels])
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("level")
    if len(levels) * len(names) <= 600:
        for i in range(len(names)):
            for j in range(len(levels)):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] < 60 else "black")
    fig.colorbar(image, ax=ax, label="pruned (%)")
    n = an.dense.n if an.dense else 0
    ax.set_title(f"pruned % per tensor, ticket branch, mean over n={n} replicate(s)\n{title}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, plt)


def write_plots(an: Analysis, cfg: RunConfig, title: str, run_dir: str) -> list[str]:
    if not an.ticket:
        return []
    return [accuracy_plot(an, cfg, title, os.path.join(run_dir, rundir.ACCURACY_PLOT)),
            sparsity_plot(an, title, os.path.join(run_dir, rundir.SPARSITY_PLOT))]


def _save(fig, path: str, plt) -> str:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def comparison_plot(result: dict, path: str) -> str:
    """lth_tf.report.compare's result as a figure: validation accuracy per run (top) and each run minus the
    first, paired by replicate (bottom), by weights remaining (log scale, sparser to the right)."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7.5), height_ratios=(3, 2), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    levels = [row["level"] for row in result["levels"]]
    for i, run in enumerate(result["runs"]):
        cells = [row["runs"][i] for row in result["levels"]]
        x = [100 * (1 - c["sparsity"]) for c in cells]
        panels = ((top, "valid_accuracy"),) + (((bottom, "valid_minus_first"),) if i else ())
        for ax, key in panels:
            est = [Estimate(**c[key]) for c in cells]
            colour = colours[i % len(colours)]
            ax.plot(x, [100 * e.mean for e in est], marker=".", color=colour,
                    label=f"{run['name']}: mean" if ax is top else None)
            band = [(xx, e) for xx, e in zip(x, est) if e.has_interval]
            if band:
                ax.fill_between([b for b, _ in band], [100 * e.low for _, e in band], [100 * e.high for _, e in band],
                                color=colour, alpha=0.18, lw=0,
                                label=f"{run['name']}: {_band_label(est)}" if ax is top else None)
    bottom.axhline(0.0, color="black", ls="--", lw=1)
    differences = [Estimate(**row["runs"][i]["valid_minus_first"]) for row in result["levels"]
                   for i in range(1, len(result["runs"]))]
    bottom.text(0.01, 0.97, f"bands: {_band_label(differences)}", transform=bottom.transAxes, fontsize=7.5,
                va="top")
    xs = [100 * (1 - row["runs"][0]["sparsity"]) for row in result["levels"]]
    step = 1 if len(xs) <= 11 else 2
    for ax, top_labels in ((top, True), (bottom, False)):
        _remaining_axis(ax, xs[::step], levels[::step], xs, top_labels)
    top.set_xlabel("")
    first = result["runs"][0]["name"]
    top.set_ylabel(f"{result['branch']}: validation accuracy (%)")
    bottom.set_ylabel(f"run − {first},\npaired by replicate (points)" if len(first) < 30 else
                      "run − the first run,\npaired by replicate (points)")
    fig.suptitle(f"{result['branch']} by level, replicates {', '.join(map(str, result['replicates']))}; "
                 f"differences to {first}", fontsize=10)
    fig.legend(*top.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.03 * (1 + len(result["runs"])), 1, 1))
    return _save(fig, path, plt)
