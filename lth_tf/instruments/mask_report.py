"""The mask analysis as files: mask_analysis.md (the report section), mask_analysis.json and the figures
(lth_tf.instruments.plots), written atomically. `write(result, out)` takes lth_tf.instruments.masks.analyse's
result."""
from __future__ import annotations

import os

from lth_tf import atomic
from lth_tf.instruments import overlap as ov

MARKDOWN, JSON = "mask_analysis.md", "mask_analysis.json"


# ------------------------------------------------------------------------------------------- writing ---
def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _token(text: str) -> str:
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def markdown(result: dict, figures: dict[str, str]) -> str:
    s = result["settings"]
    lines = [f"# Mask analysis: {result['run']}", "",
             f"{s['model']} on {s['dataset']}; {s['strategy']} pruning"
             + (f" (global ranking: {s['global_ranking']})" if s["strategy"] != "local" else "")
             + f", {100 * s['prune_fraction']:g}% of the survivors per level. Branches: "
             + "; ".join(f"{b} (replicates {', '.join(map(str, result['replicates'][b]))}, levels "
                         f"{min(result['levels'][b])}-{max(result['levels'][b])})" for b in result["branches"])
             + ". Finished tasks only. All numbers are also in mask_analysis.json."
             + (f" {', '.join(result['borrowed'])} trains under the ticket's masks: not analysed again (its "
                f"overlap with the ticket's masks is checked under 'Between branches')." if result.get("borrowed")
                else ""), ""]
    lines += _overlap_section(result, figures) + _consecutive_section(result)
    lines += _embedding_section(result, figures) + _filter_section(result, figures) + _gate_section(result, figures)
    return "\n".join(lines) + "\n"


def _overlap_section(result: dict, figures: dict) -> list[str]:
    lines = ["## Replicate overlap", "",
             "Two replicates' masks at one level: **shared** = survivors both keep / sqrt(k1 k2) (the fraction of "
             "survivors shared when both keep k, as local pruning's exact counts make it); **random** = what two "
             "random masks of the same per-tensor sparsity would share, sqrt(k1 k2)/n per tensor, from "
             "E|A∩B| = k1 k2 / n (summed over tensors for the totals); **above chance** = (|A∩B| - E) / "
             "(max |A∩B| - E): 0 random, 1 the most the sizes allow. Mean over pairs of replicates; %.", ""]
    if not result["replicate_overlap"]:
        lines += ["Needs 2 or more replicates with finished tasks at a level: none here.", ""]
    for branch, by_level in result["replicate_overlap"].items():
        tensors = list(next(iter(by_level.values()))["tensors"])
        lines += [f"### {branch}", "",
                  "| level | remaining % | pairs | shared | random | above chance | w/o embedding: shared | random | "
                  "above chance |", "|---|---|---|---|---|---|---|---|---|"]
        for key, o in by_level.items():
            d = result["density"][branch][key]
            w = o["without_embedding"] or {}
            lines.append(f"| {key} | {_pct(d['overall'], 2)} | {o['pairs']} | {_pct(o['overall']['shared'])} | "
                         f"{_pct(o['overall']['shared_random'])} | {_num(o['overall']['above_chance'])} | "
                         f"{_pct(w.get('shared'))} | {_pct(w.get('shared_random'))} | {_num(w.get('above_chance'))} |")
        lines += ["", "Per tensor, shared / random (%):", "",
                  "| level | " + " | ".join(tensors) + " |", "|---|" + "---|" * len(tensors)]
        for key, o in by_level.items():
            cells = [f"{_pct(o['tensors'][n]['shared'])} / {_pct(o['tensors'][n]['shared_random'])}"
                     if n in o["tensors"] else "-" for n in tensors]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("")
    if figures.get("overlap"):
        lines += [f"![replicate overlap]({figures['overlap']})", ""]
    if result["branch_overlap"]:
        lines += ["### Between branches of one replicate", "",
                  "Same statistics for two branches' masks at one level and replicate (mean over replicates). "
                  "reinit trains under the ticket's mask (100% by construction); random_mask is drawn at random "
                  "with the ticket's per-tensor counts (chance by construction).", "",
                  "| branches | level | shared | random | above chance | w/o embedding: shared | random |",
                  "|---|---|---|---|---|---|---|"]
        for pair, by_level in result["branch_overlap"].items():
            for key, o in by_level.items():
                w = o["without_embedding"] or {}
                lines.append(f"| {pair.replace('|', ' vs ')} | {key} | {_pct(o['overall']['shared'])} | "
                             f"{_pct(o['overall']['shared_random'])} | {_num(o['overall']['above_chance'])} | "
                             f"{_pct(w.get('shared'))} | {_pct(w.get('shared_random'))} |")
        lines.append("")
    return lines


def _consecutive_section(result: dict) -> list[str]:
    lines = ["## Consecutive levels", "",
             "Level L -> L+1 of one replicate: **kept** = L's survivors still alive at L+1 (IMP: 1 - the pruned "
             "fraction), **nested** = L+1's survivors that were alive at L (100% by construction for a "
             "trajectory: ticket, study_random; reinit borrows the ticket's masks; random_mask draws a fresh "
             "random mask every level, so it is nested only by chance). random = independent random masks of "
             "those sizes (kept k_{L+1}/n, nested k_L/n). Mean over replicates; %.", ""]
    if not result["consecutive"]:
        return lines + ["Needs two consecutive finished levels: none here.", ""]
    lines += ["| branch | level | kept | random | nested | random | w/o embedding: kept | nested | random |",
              "|---|---|---|---|---|---|---|---|---|"]
    for branch, by_level in result["consecutive"].items():
        for key, c in by_level.items():
            o, w = c["overall"], c["without_embedding"] or {}
            lines.append(f"| {branch} | {c['from']}->{key} | {_pct(o['kept'])} | {_pct(o['kept_random'])} | "
                         f"{_pct(o['nested'])} | {_pct(o['nested_random'])} | {_pct(w.get('kept'))} | "
                         f"{_pct(w.get('nested'))} | {_pct(w.get('nested_random'))} |")
    return lines + [""]


def _embedding_section(result: dict, figures: dict) -> list[str]:
    lines = ["## Embedding survival by word frequency", ""]
    if not result["embedding"]:
        return lines + ["The embedding is not pruned in this run.", ""]
    lines += ["Fraction of each word's embedding row alive (mean over replicates) against the word's frequency "
              "rank in the training split (vocab.txt: rank 1 = the most frequent word, after <pad> and <unk>). "
              "Spearman's rho of survival and rank: negative = frequent words keep more. A random mask of the "
              "same sparsity keeps every row at the embedding's density on average.", "",
              "| branch | level | density % | <pad> % | <unk> % | rho(survival, rank) | rows at 0% | rows at 100% |",
              "|---|---|---|---|---|---|---|---|"]
    shown = set(map(str, result["shown_levels"]))
    for branch, by_level in result["embedding"].items():
        for key, e in by_level.items():
            if key in shown:
                lines.append(f"| {branch} | {key} | {_pct(e['density'], 2)} | {_pct(e['pad'])} | {_pct(e['unk'])} | "
                             f"{_num(e['spearman_rank'], 3)} | {e['dead_rows']:,} | {e['full_rows']:,} |")
    if figures.get("embedding"):
        lines += ["", f"![embedding survival by frequency]({figures['embedding']})"]
    branch = result["branches"][0] if result["branches"][0] in result["embedding"] else next(iter(result["embedding"]))
    lines += ["", f"Words keeping the most and the fewest weights ({branch}; % of the row alive, rank in "
                  f"brackets; ties: the more frequent word first):", ""]
    for key, e in result["embedding"][branch].items():
        if key not in shown:
            continue
        ties = e.get("ties", {})
        for which in ("most", "fewest"):
            words = ", ".join(f"{_token(w['token'])} {_pct(w['alive'], 0)} [{w['rank']}]" for w in e[which])
            tie = f" ({ties[which]:,} words tie at the {'top' if which == 'most' else 'bottom'})" \
                if ties.get(which, 0) > len(e[which]) else ""
            lines.append(f"- level {key}, {which}{tie}: {words}")
    return lines + [""]


def _filter_section(result: dict, figures: dict) -> list[str]:
    if not result["filters"]:
        return []
    lines = ["## CNN: survival per filter", "",
             "Fraction of each output filter's kernel weights alive (width x embedding dim per filter), "
             "statistics over filters per replicate, then their mean. random sd = the spread across filters a "
             "random mask of the same sparsity would give (hypergeometric); an observed sd far above it means "
             "pruning concentrates on some filters. dead = filters with no weight left.", "",
             "| branch | level | tensor | density % | mean % | sd | random sd | min % | median % | max % | dead |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    shown = set(map(str, result["shown_levels"]))
    for branch, by_level in result["filters"].items():
        for key, tensors in by_level.items():
            if key not in shown:
                continue
            for name, f in tensors.items():
                lines.append(f"| {branch} | {key} | {name} | {_pct(f['density'])} | {_pct(f['mean'])} | "
                             f"{_num(f['sd'], 3)} | {_num(f['random_sd'], 3)} | {_pct(f['min'])} | "
                             f"{_pct(f['median'])} | {_pct(f['max'])} | {f['dead']:g} / {f['filters']} |")
    if figures.get("filters"):
        lines += ["", f"![filter survival]({figures['filters']})"]
    return lines + [""]


def _gate_section(result: dict, figures: dict) -> list[str]:
    if not result["gates"]:
        return []
    lines = ["## LSTM: survival per gate", "",
             "Fraction alive in each gate's columns (Keras' order: i input, f forget, c cell candidate, o output) "
             "of every LSTM kernel, recurrent kernel and bias; density = the whole tensor's (what a random mask "
             "would keep in every gate). Mean over replicates; %.", "",
             "| branch | level | tensor | density | i | f | c | o |", "|---|---|---|---|---|---|---|---|"]
    shown = set(map(str, result["shown_levels"]))
    for branch, by_level in result["gates"].items():
        for key, tensors in by_level.items():
            if key not in shown:
                continue
            for name, g in tensors.items():
                lines.append(f"| {branch} | {key} | {name} | {_pct(g['density'])} | "
                             + " | ".join(_pct(g[x]) for x in ov.KERAS_GATES) + " |")
    if figures.get("gates"):
        lines += ["", f"![gate survival]({figures['gates']})"]
    return lines + [""]


def write(result: dict, out: str, plots: bool = True) -> dict[str, str]:
    """Write mask_analysis.md, mask_analysis.json and the figures into `out` (atomically); returns their paths."""
    os.makedirs(out, exist_ok=True)
    figures = {}
    if plots:
        from lth_tf.instruments import plots as plots_lib

        figures = plots_lib.write_all(result, out)
    atomic.write_json(os.path.join(out, JSON), result)
    text = markdown(result, {k: os.path.basename(v) for k, v in figures.items()})
    atomic.write_text(os.path.join(out, MARKDOWN), text, errors="surrogateescape")
    return {"markdown": os.path.join(out, MARKDOWN), "json": os.path.join(out, JSON), **figures}
