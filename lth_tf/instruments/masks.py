"""Mask analysis of a run: `python -m lth_tf.instruments.masks --run_dir=DIR [--out=DIR/mask_analysis]`.

Reads the masks of a run's finished tasks (r<R>/level_<LL>/<branch>/mask.npz) and its vocabulary, never
TensorFlow, and writes a report section (mask_analysis.md, mask_analysis.json, PNG figures) with
lth_tf.atomic:

1. replicate overlap: at each level, per tensor, how many survivors two replicates' masks share, against what
   random masks of the same per-tensor sparsity would share (closed form: lth_tf.instruments.overlap);
   also between branches of one replicate (e.g. the ticket and the study's random trajectory);
2. consecutive levels: of level L's survivors, the fraction still alive at L+1 ("kept"), and of L+1's, the
   fraction that were alive at L ("nested": 1 by construction for a trajectory; a fresh random mask each
   level gives chance);
3. embedding survival by word frequency: the fraction of a row's weights alive against the token's frequency
   rank (vocab.txt's order after <pad>, <unk>: by training frequency), in log2 bins; the words keeping the
   most and the fewest weights;
4. per-filter survival of the CNN's conv<w>/kernel (fraction alive per output filter, against the spread
   random masks would have) and per-gate survival of the BiLSTM (kernel, recurrent_kernel, bias columns in
   Keras' gate order i, f, c, o).

`analyse(run)` returns the JSON-able result; `write(result, out)` (lth_tf.instruments.mask_report) writes the
files; `main` is the command.
"""
from __future__ import annotations

import itertools
import os
import re
from typing import Iterable

import numpy as np
from absl import flags

from lth_tf import cli
from lth_tf.errors import UserError
from lth_tf.instruments import overlap as ov
from lth_tf.instruments.mask_report import JSON, MARKDOWN, write  # noqa: F401 (re-exported)
from lth_tf.nets import EMBEDDING_LAYER, PAD_ID, UNK_ID
from lth_tf.rundir import RunDir, Task

COMMAND = "lth_tf.instruments.masks"
SUMMARY = ("Mask analysis of a run: replicate overlap against random masks, consecutive levels, embedding "
           "survival by word frequency, CNN filters and LSTM gates (docs/instruments.md).")
OUT_DIR = "mask_analysis"
OVERLAP_PLOT, EMBEDDING_PLOT = "overlap_replicates.png", "embedding_by_frequency.png"
FILTER_PLOT, GATE_PLOT = "filter_survival.png", "gate_survival.png"
CONV_KERNEL_RE = re.compile(r"^conv\d+/kernel$")
LSTM_WEIGHT_RE = re.compile(r"^(?P<layer>[^/]*lstm[^/]*)(?:/(?P<direction>[^/]+))?"
                            r"/(?P<kind>kernel|recurrent_kernel|bias)$")
FIRST_WORD_ROW = 2  # rows 0 (<pad>) and 1 (<unk>) come before the words, which are in frequency order
assert (PAD_ID, UNK_ID) == (0, 1)


def is_embedding(name: str) -> bool:
    return name.startswith(EMBEDDING_LAYER + "/")


# ------------------------------------------------------------------------------------------- reading ---
class RunMasks:
    """The finished tasks of a run, by branch and level, and their masks (read on demand)."""

    def __init__(self, run: RunDir, branches: Iterable[str] | None = None):
        self.run = run
        wanted = set(branches) if branches else None
        self.tasks: dict[str, dict[int, list[int]]] = {}
        for task in run.finished():
            if wanted is None or task.branch in wanted:
                self.tasks.setdefault(task.branch, {}).setdefault(task.level, []).append(task.replicate)
        if not self.tasks:
            what = f" of branch {', '.join(sorted(wanted))}" if wanted else ""
            raise UserError(f"--run_dir={run.path}: no finished task{what} yet (no metrics.json)")
        order = {"ticket": 0, "reinit": 1, "random_mask": 2, "study_random": 3}
        self.branches = sorted(self.tasks, key=lambda b: (order.get(b, 9), b))

    def levels(self) -> list[int]:
        return sorted({lvl for by_level in self.tasks.values() for lvl in by_level})

    def at(self, level: int) -> dict[str, dict[int, dict[str, np.ndarray]]]:
        """{branch: {replicate: masks}} of the finished tasks at `level`."""
        out = {}
        for branch in self.branches:
            reps = self.tasks[branch].get(level, [])
            if reps:
                out[branch] = {r: self.run.read_masks(Task(r, level, branch)) for r in sorted(reps)}
        return out


# ------------------------------------------------------------------------------------------ analysis ---
def _pair_summary(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict:
    """describe() per tensor, over all tensors and over all but the embedding, for two masks of a model."""
    names = [n for n in a if n in b]
    counts = {n: ov.pair_counts(a[n], b[n]) for n in names}
    total = sum((counts[n] for n in names), ov.Counts())
    rest = sum((counts[n] for n in names if not is_embedding(n)), ov.Counts())
    return {"tensors": {n: ov.describe(c) for n, c in counts.items()}, "overall": ov.describe(total),
            "without_embedding": ov.describe(rest) if rest.n else None}


def _consecutive_summary(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> dict:
    names = [n for n in after if n in before]
    counts = {n: ov.pair_counts(before[n], after[n]) for n in names}
    total = sum((counts[n] for n in names), ov.Counts())
    rest = sum((counts[n] for n in names if not is_embedding(n)), ov.Counts())
    return {"tensors": {n: ov.describe_consecutive(c) for n, c in counts.items()},
            "overall": ov.describe_consecutive(total),
            "without_embedding": ov.describe_consecutive(rest) if rest.n else None}


def _mean_summaries(summaries: list[dict]) -> dict:
    """Mean over pairs (or replicates) of _pair_summary / _consecutive_summary results."""
    first = summaries[0]
    out = {"pairs": len(summaries),
           "tensors": {n: ov.mean_of([s["tensors"][n] for s in summaries]) for n in first["tensors"]},
           "overall": ov.mean_of([s["overall"] for s in summaries])}
    rest = [s["without_embedding"] for s in summaries if s["without_embedding"]]
    out["without_embedding"] = ov.mean_of(rest) if rest else None
    return out


def _density(masks_by_rep: dict[int, dict[str, np.ndarray]]) -> dict:
    reps = list(masks_by_rep.values())
    names = list(reps[0])
    out = {n: float(np.mean([m[n].mean() for m in reps])) for n in names}
    size = {n: reps[0][n].size for n in names}
    alive = {n: np.mean([np.count_nonzero(m[n]) for m in reps]) for n in names}
    out["overall"] = float(sum(alive.values()) / max(1, sum(size.values())))
    rest = [n for n in names if not is_embedding(n)]
    out["without_embedding"] = float(sum(alive[n] for n in rest) / sum(size[n] for n in rest)) if rest else None
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None if either is constant."""
    def ranks(v):
        uniq, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        start = np.cumsum(counts) - counts
        return (start + (counts - 1) / 2.0)[inverse]
    if x.size < 2:
        return None
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def _word_list(order: np.ndarray, survival: np.ndarray, vocab: list[str], top: int) -> list[dict]:
    out = []
    for row in order[:top]:
        row = int(row)
        out.append({"rank": row - FIRST_WORD_ROW + 1, "id": row,
                    "token": vocab[row] if row < len(vocab) else f"#{row}", "alive": float(survival[row])})
    return out


def embedding_survival(masks_by_rep: dict[int, dict[str, np.ndarray]], vocab: list[str], top: int = 20) -> dict | None:
    """Row survival of the embedding (mean over replicates) against frequency rank: log2 bins, Spearman's rho
    of survival and rank, pad/unk rows, rows entirely pruned or kept, and the words keeping the most and the
    fewest weights (ties: the more frequent word first)."""
    name = next((n for n in next(iter(masks_by_rep.values())) if is_embedding(n)), None)
    if name is None:
        return None
    survival = np.mean([ov.row_survival(m[name]) for m in masks_by_rep.values()], axis=0)
    words = survival[FIRST_WORD_ROW:]
    ranks = np.arange(1, words.size + 1)
    word_rows = np.arange(FIRST_WORD_ROW, survival.size)
    most = word_rows[np.lexsort((ranks, -words))]
    fewest = word_rows[np.lexsort((ranks, words))]
    result = {"tensor": name, "rows": int(survival.size), "replicates": len(masks_by_rep),
              "density": float(np.mean([m[name].mean() for m in masks_by_rep.values()])),
              "pad": float(survival[PAD_ID]), "unk": float(survival[UNK_ID]),
              "bins": ov.log2_bins(words), "spearman_rank": _spearman(ranks.astype(float), words),
              "dead_rows": int(np.count_nonzero(words == 0)), "full_rows": int(np.count_nonzero(words == 1)),
              "most": _word_list(most, survival, vocab, top), "fewest": _word_list(fewest, survival, vocab, top)}
    if words.size:
        result["ties"] = {"most": int(np.count_nonzero(words == words.max())),
                          "fewest": int(np.count_nonzero(words == words.min()))}
    return result


def filter_survival(masks_by_rep: dict[int, dict[str, np.ndarray]]) -> dict:
    """Per conv<w>/kernel: the fraction alive per output filter; statistics per replicate, then their mean."""
    out = {}
    names = [n for n in next(iter(masks_by_rep.values())) if CONV_KERNEL_RE.match(n)]
    for name in names:
        rows = []
        for m in masks_by_rep.values():
            mask = m[name]
            per_filter = ov.filter_survival(mask)
            n, k, filters = mask.size, int(np.count_nonzero(mask)), mask.shape[-1]
            q = np.percentile(per_filter, [10, 50, 90])
            rows.append({"density": k / n, "mean": float(per_filter.mean()), "sd": float(per_filter.std()),
                         "random_sd": ov.random_group_sd(n, k, n // filters), "min": float(per_filter.min()),
                         "q10": float(q[0]), "median": float(q[1]), "q90": float(q[2]),
                         "max": float(per_filter.max()), "dead": int(np.count_nonzero(per_filter == 0)),
                         "sorted": np.sort(per_filter)[::-1]})
        mask = next(iter(masks_by_rep.values()))[name]
        summary = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "sorted"}
        summary.update(filters=int(mask.shape[-1]), weights_per_filter=int(mask.size // mask.shape[-1]),
                       replicates=len(rows), sorted_mean=np.mean([r["sorted"] for r in rows], axis=0).tolist())
        out[name] = summary
    return out


def gate_survival(masks_by_rep: dict[int, dict[str, np.ndarray]]) -> dict:
    """Per LSTM kernel, recurrent_kernel and bias: the fraction alive per gate (i, f, c, o), mean over replicates."""
    out = {}
    names = [n for n in next(iter(masks_by_rep.values())) if LSTM_WEIGHT_RE.match(n)]
    for name in names:
        reps = [m[name] for m in masks_by_rep.values()]
        if reps[0].shape[-1] % len(ov.KERAS_GATES):
            continue
        gates = [ov.gate_survival(m) for m in reps]
        out[name] = {g: float(np.mean([x[g] for x in gates])) for g in ov.KERAS_GATES}
        out[name]["density"] = float(np.mean([m.mean() for m in reps]))
    return out


def borrowed_branches(branches: list[str]) -> list[str]:
    """Branches that train under the ticket's masks (reinit), when the ticket is analysed too: their masks
    are the ticket's, so only their overlap with the ticket's (100% by construction) is reported."""
    from lth_tf.lottery.branches import BRANCHES

    return [b for b in branches if "ticket" in branches and b in BRANCHES and BRANCHES[b].mask == "ticket"]


def default_levels(levels: list[int]) -> list[int]:
    """Up to five levels to show in tables and figures: 1, a quarter, half, three quarters and the last."""
    pruned = [lvl for lvl in levels if lvl > 0]
    if not pruned:
        return levels[:1]
    top = pruned[-1]
    picks = [pruned[0]] + [min(pruned, key=lambda x: abs(x - top * q)) for q in (0.25, 0.5, 0.75)] + [top]
    return sorted(set(picks))


def analyse(run: RunDir, branches: Iterable[str] | None = None, levels: Iterable[int] | None = None,
            top_words: int = 20, log=print) -> dict:
    """The mask analysis of `run` (finished tasks only) as a JSON-able dict (see the module's docstring)."""
    cfg = run.config()
    rm = RunMasks(run, branches)
    all_levels = rm.levels()
    shown = sorted(set(levels)) if levels else default_levels(all_levels)
    missing = [lvl for lvl in shown if lvl not in all_levels]
    if missing:
        raise UserError(f"--mask_levels: no finished task at level {', '.join(map(str, missing))} "
                        f"(finished levels: {', '.join(map(str, all_levels))})")
    try:
        vocab = run.vocab()
    except UserError:
        vocab = []
    borrowed = borrowed_branches(rm.branches)
    result = {"run": run.name, "path": os.path.abspath(run.path),
              "settings": {"model": cfg.model.model, "dataset": cfg.data.dataset, "strategy": cfg.prune.strategy,
                           "global_ranking": getattr(cfg.prune, "global_ranking", "all"),
                           "prune_fraction": cfg.prune.prune_fraction, "split": cfg.data.split},
              "branches": rm.branches, "replicates": {b: sorted({r for reps in rm.tasks[b].values() for r in reps})
                                                     for b in rm.branches},
              "levels": {b: sorted(rm.tasks[b]) for b in rm.branches}, "shown_levels": shown, "borrowed": borrowed,
              "vocab_rows": len(vocab), "tensors": {}, "density": {}, "replicate_overlap": {}, "branch_overlap": {},
              "consecutive": {}, "embedding": {}, "filters": {}, "gates": {}}
    previous: dict[str, dict[int, dict]] = {}
    previous_level: int | None = None
    for level in all_levels:
        current = rm.at(level)
        log(f"masks: level {level}: " + ", ".join(f"{b} x{len(reps)}" for b, reps in current.items()))
        for branch, by_rep in current.items():
            key = str(level)
            first = next(iter(by_rep.values()))
            for name, m in first.items():
                result["tensors"].setdefault(name, {"shape": list(m.shape), "size": int(m.size)})
            result["density"].setdefault(branch, {})[key] = _density(by_rep)
            if branch in borrowed:
                continue  # the ticket's masks: compared with them below (branch_overlap), not analysed twice
            if len(by_rep) >= 2:
                pairs = [_pair_summary(by_rep[a], by_rep[b]) for a, b in itertools.combinations(sorted(by_rep), 2)]
                result["replicate_overlap"].setdefault(branch, {})[key] = _mean_summaries(pairs)
            before = previous.get(branch)
            if before is not None:
                common = [r for r in by_rep if r in before]
                if common:
                    summary = _mean_summaries([_consecutive_summary(before[r], by_rep[r]) for r in common])
                    summary["from"] = previous_level
                    result["consecutive"].setdefault(branch, {})[key] = summary
            emb = embedding_survival(by_rep, vocab, top_words)
            if emb:
                result["embedding"].setdefault(branch, {})[key] = emb
            filt = filter_survival(by_rep)
            if filt:
                result["filters"].setdefault(branch, {})[key] = filt
            gates = gate_survival(by_rep)
            if gates:
                result["gates"].setdefault(branch, {})[key] = gates
        for a, b in itertools.combinations(current, 2):
            common = [r for r in current[a] if r in current[b]]
            if common and level > 0:
                summary = _mean_summaries([_pair_summary(current[a][r], current[b][r]) for r in common])
                result["branch_overlap"].setdefault(f"{a}|{b}", {})[str(level)] = summary
        previous, previous_level = current, level
    return result


# ------------------------------------------------------------------------------------------- command ---
FLAGS = flags.FLAGS


def define_flags() -> None:
    if "run_dir" not in FLAGS:
        flags.DEFINE_list("run_dir", [], "Run directories, comma-separated.", module_name=COMMAND)
    if "out" not in FLAGS:
        flags.DEFINE_string("out", "", "Where to write the analysis; empty = <run_dir>/mask_analysis (only with "
                                       "one --run_dir).", module_name=COMMAND)
    if "mask_branches" not in FLAGS:
        flags.DEFINE_list("mask_branches", [], "Branches to analyse; empty = every branch with finished tasks.",
                          module_name=COMMAND)
    if "mask_levels" not in FLAGS:
        flags.DEFINE_list("mask_levels", [], "Levels shown in the tables of words, filters and gates and in the "
                                             "figures; empty = 1, a quarter, half, three quarters and the last.",
                          module_name=COMMAND)
    if "top_words" not in FLAGS:
        flags.DEFINE_integer("top_words", 20, "Words listed as keeping the most and the fewest weights.", lower_bound=1,
                             module_name=COMMAND)


def _paths(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def main() -> int:
    paths = [p for p in _paths(FLAGS.run_dir) if p]
    if not paths:
        raise UserError("--run_dir is required: a run directory such as runs/cnn_imdb_<hash>")
    if FLAGS.out and len(paths) > 1:
        raise UserError("--out applies to one --run_dir; without it each run's analysis goes to "
                        "<run_dir>/mask_analysis")
    try:
        levels = [int(x) for x in FLAGS.mask_levels]
    except ValueError:
        raise UserError(f"--mask_levels={','.join(FLAGS.mask_levels)}: give level numbers like 1,5,10") from None
    for path in paths:
        run = RunDir.open(path)
        result = analyse(run, FLAGS.mask_branches or None, levels or None, FLAGS.top_words,
                         log=lambda m: print(m, flush=True))
        out = FLAGS.out or os.path.join(run.path, OUT_DIR)
        written = write(result, out)
        print(f"mask analysis of {run.path} written to {written['markdown']}", flush=True)
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
