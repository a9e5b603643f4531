"""Magnitude pruning as pure functions: `prune(masks, weights, fraction, strategy, **options) -> masks`.

Strategies (`--strategy`):
- local: every tensor loses `fraction` of its surviving weights, those of smallest magnitude.
- global: one magnitude ranking over the tensors; the model loses `fraction` of its surviving weights.
- lamp: one ranking by LAMP score (Lee et al. 2021, "Layer-adaptive sparsity for the magnitude-based
  pruning"): in each tensor, sort the surviving weights by ascending magnitude; weight u scores
  w_u^2 / sum_{v >= u} w_v^2 (v: u and the survivors after it in that order). The model loses `fraction` of
  its surviving weights, lowest scores first. Every tensor's largest survivor scores 1 and every other one
  at most 1/2, so LAMP empties no tensor unless a round prunes more weights than there are non-largest
  survivors.

Options: `global_ranking` ('all' or 'no_embedding': the embedding is left out of the global/lamp ranking
and pruned locally by the same fraction, as open_lth ranks only conv/linear weights) and
`allow_empty_tensors` (a round that would prune every surviving weight of a kernel or the embedding raises
UserError naming the tensor unless this is True; then it warns; a bias emptied only warns).
`options(cfg.prune)` gives them from the settings.

Counts are exact: a tensor (local) or the ranked tensors together (global, lamp) lose round(fraction * alive)
of their surviving weights, as PyTorch's iterative `l1_unstructured` does (Python's round, half to even).
Ties in magnitude (or score) are broken by tensor order, then position (lower flat index pruned first),
never by a threshold that would remove every tied weight at once (biases all start at exactly zero).
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from lth_tf import config
from lth_tf.errors import UserError
from lth_tf.nets import EMBEDDING_LAYER
from lth_tf.sparsity.masks import Masks

GLOBAL_RANKINGS = ("all", "no_embedding")
assert GLOBAL_RANKINGS == config.GLOBAL_RANKINGS, "config.GLOBAL_RANKINGS (the flag's choices) must list these"
OPTION_FIELDS = ("global_ranking", "allow_empty_tensors")  # the PruneConfig fields prune() takes as options


def _check(masks: Mapping, weights: Mapping, fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--prune_fraction={fraction}: must lie strictly between 0 and 1")
    if set(masks) != set(weights):
        raise ValueError(f"masks and weights name different tensors: {sorted(set(masks) ^ set(weights))}")


def _n_to_prune(fraction: float, alive: int) -> int:
    return int(round(fraction * alive))


def is_embedding(name: str) -> bool:
    return name.startswith(EMBEDDING_LAYER + "/")


def _alive(mask) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask, bool).ravel())


def _prune_lowest(masks: Masks, names: list[str], scores: list[np.ndarray], fraction: float) -> Masks:
    """Prune round(fraction * survivors of `names`) survivors of lowest score, over all `names` together;
    `scores[i]` holds one score per survivor of names[i], in position order. Ties: tensor order, then position."""
    alive = [_alive(masks[n]) for n in names]
    owner = np.concatenate([np.full(a.size, i, np.int64) for i, a in enumerate(alive)] or [np.zeros(0, np.int64)])
    position = np.concatenate(alive or [np.zeros(0, np.int64)])
    score = np.concatenate(scores or [np.zeros(0)])
    n = _n_to_prune(fraction, position.size)
    # Sort by score, then tensor order, then position: lexsort's last key is the primary one.
    chosen = np.lexsort((position, owner, score))[:n]
    out = {}
    for i, name in enumerate(names):
        flat = np.asarray(masks[name], bool).ravel().copy()
        flat[position[chosen[owner[chosen] == i]]] = False
        out[name] = flat.reshape(np.shape(masks[name]))
    return out


def _magnitudes(masks: Masks, weights: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.abs(np.asarray(weights[name]).ravel()[_alive(masks[name])])


def prune_local(masks: Masks, weights: Mapping[str, np.ndarray], fraction: float) -> Masks:
    """Every tensor loses `fraction` of its surviving weights, those of smallest magnitude."""
    _check(masks, weights, fraction)
    out = {}
    for name, mask in masks.items():
        flat_mask = np.asarray(mask, bool).ravel().copy()
        alive = np.flatnonzero(flat_mask)
        n = _n_to_prune(fraction, alive.size)
        if n:
            magnitude = np.abs(np.asarray(weights[name]).ravel()[alive])
            flat_mask[alive[np.argsort(magnitude, kind="stable")[:n]]] = False  # ties: lower position first
        out[name] = flat_mask.reshape(np.shape(mask))
    return out


def _split_ranking(masks: Masks, ranking: str) -> tuple[list[str], list[str]]:
    """(tensors in the cross-tensor ranking, tensors pruned locally)."""
    if ranking not in GLOBAL_RANKINGS:
        raise UserError(f"--global_ranking={ranking!r}: choose from {', '.join(GLOBAL_RANKINGS)}")
    local = [n for n in masks if ranking == "no_embedding" and is_embedding(n)]
    return [n for n in masks if n not in local], local


def prune_global(masks: Masks, weights: Mapping[str, np.ndarray], fraction: float, ranking: str = "all") -> Masks:
    """One magnitude ranking over the tensors: they lose `fraction` of their surviving weights together.
    ranking='no_embedding': the embedding is pruned locally by `fraction`, the others ranked together."""
    _check(masks, weights, fraction)
    ranked, local = _split_ranking(masks, ranking)
    out = _prune_lowest(masks, ranked, [_magnitudes(masks, weights, n) for n in ranked], fraction)
    out.update(prune_local({n: masks[n] for n in local}, {n: weights[n] for n in local}, fraction) if local else {})
    return {name: out[name] for name in masks}


def lamp_scores(values: np.ndarray) -> np.ndarray:
    """LAMP scores of one tensor's surviving weights `values` (any order; returned in that order): sorted by
    ascending magnitude (ties: earlier first), weight u scores w_u^2 / sum_{v >= u} w_v^2. The last in that
    order (the largest) scores 1, even when it is 0; the others at most 1/2 (0 when all from them on are 0)."""
    magnitude = np.abs(np.asarray(values, np.float64).ravel())
    order = np.argsort(magnitude, kind="stable")
    squares = np.square(magnitude[order])
    suffix = np.cumsum(squares[::-1])[::-1]
    sorted_scores = np.zeros_like(squares)
    np.divide(squares, suffix, out=sorted_scores, where=suffix > 0)
    if sorted_scores.size:
        sorted_scores[-1] = 1.0
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    return scores


def prune_lamp(masks: Masks, weights: Mapping[str, np.ndarray], fraction: float, ranking: str = "all") -> Masks:
    """One ranking by LAMP score over the tensors: they lose `fraction` of their surviving weights together,
    lowest scores first. ranking='no_embedding': the embedding is pruned locally (by magnitude) instead."""
    _check(masks, weights, fraction)
    ranked, local = _split_ranking(masks, ranking)
    out = _prune_lowest(masks, ranked, [lamp_scores(_magnitudes(masks, weights, n)) for n in ranked], fraction)
    out.update(prune_local({n: masks[n] for n in local}, {n: weights[n] for n in local}, fraction) if local else {})
    return {name: out[name] for name in masks}


STRATEGIES = {"local": prune_local, "global": prune_global, "lamp": prune_lamp}
assert tuple(STRATEGIES) == config.STRATEGIES, "config.STRATEGIES (the flag's choices) must list these"


def emptied(before: Masks, after: Masks) -> dict[str, int]:
    """{tensor: survivors before} of the tensors that had survivors before and have none after."""
    return {name: int(np.count_nonzero(before[name])) for name in before
            if np.any(before[name]) and not np.any(after[name])}


def is_bias(name: str) -> bool:
    return name.split("/")[-1] == "bias"


def _names(gone: dict[str, int]) -> str:
    first, alive = next(iter(gone.items()))
    others = f" (and {len(gone) - 1} more: {', '.join(list(gone)[1:4])}{', ...' if len(gone) > 4 else ''})" \
        if len(gone) > 1 else ""
    return f"all {alive} surviving weights of {first}{others}"


def _empty_message(strategy: str, ranking: str, gone: dict[str, int], masks: Masks) -> str:
    what = f"--strategy={strategy}" + (f" --global_ranking={ranking}" if strategy != "local" else "")
    if strategy != "local" and ranking == "all" and any(is_embedding(n) for n in masks):
        why = ("the embedding's larger weights dominate one ranking over all tensors; use "
               "--global_ranking=no_embedding (the embedding pruned locally by the same fraction)"
               + (", --strategy=lamp" if strategy == "global" else "") + " or --strategy=local")
    elif strategy == "local":
        why = "a tensor this small loses all its weights at this fraction; use a smaller --prune_fraction"
    else:
        why = "use --strategy=local" + (" or --strategy=lamp" if strategy == "global" else "") + \
              " or a smaller --prune_fraction"
    return f"{what} would prune {_names(gone)} in this round: {why}, or --allow_empty_tensors to go on anyway"


def prune(masks: Masks, weights: Mapping[str, np.ndarray], fraction: float, strategy: str = "local",
          global_ranking: str = "all", allow_empty_tensors: bool = False) -> Masks:
    """The masks after one round of `strategy` (see the module's docstring).

    A round that leaves a weight tensor (a kernel, the embedding) that had survivors with none raises UserError
    naming it (a layer without its kernel outputs a constant), or warns if allow_empty_tensors. A bias that
    loses its last weights only warns: its layer still computes (--noprune_bias keeps biases dense)."""
    if strategy not in STRATEGIES:
        raise UserError(f"--strategy={strategy!r}: choose from {', '.join(STRATEGIES)}")
    if strategy == "local":
        out = prune_local(masks, weights, fraction)
    else:
        out = STRATEGIES[strategy](masks, weights, fraction, global_ranking)
    gone = emptied(masks, out)
    fatal = {n: k for n, k in gone.items() if not is_bias(n)}
    biases = {n: k for n, k in gone.items() if is_bias(n)}
    if fatal:
        message = _empty_message(strategy, global_ranking, fatal, masks)
        if not allow_empty_tensors:
            raise UserError(message)
        warnings.warn(message.split(", or --allow_empty_tensors")[0] + " (--allow_empty_tensors: going on)",
                      stacklevel=2)
    if biases:
        what = f"--strategy={strategy}" + (f" --global_ranking={global_ranking}" if strategy != "local" else "")
        warnings.warn(f"{what} pruned {_names(biases)} in this round (biases: their layers go on without them; "
                      f"--noprune_bias keeps biases dense)", stacklevel=2)
    return out


def options(prune_cfg) -> dict:
    """prune()'s options from a PruneConfig: `prune(m, w, p.prune_fraction, p.strategy, **options(p))`."""
    return {name: getattr(prune_cfg, name) for name in OPTION_FIELDS}


def prune_round(masks: Masks, weights: Mapping[str, np.ndarray], prune_cfg, **overrides) -> Masks:
    """One round of IMP as a run's PruneConfig sets it (weights of unmasked tensors are ignored);
    `overrides` replace options, e.g. allow_empty_tensors=True."""
    return prune(masks, {n: weights[n] for n in masks}, prune_cfg.prune_fraction, prune_cfg.strategy,
                 **dict(options(prune_cfg), **overrides))


def random_masks_like(masks: Masks, seed: int) -> Masks:
    """Masks with the same number of survivors in every tensor, at random positions (a control)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in masks.items():
        flat = np.zeros(np.size(mask), bool)
        flat[rng.permutation(flat.size)[: int(np.sum(mask))]] = True
        out[name] = flat.reshape(np.shape(mask))
    return out
