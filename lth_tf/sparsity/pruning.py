"""Magnitude pruning as pure functions: `prune(masks, weights, fraction) -> masks`.

Counts are exact: a tensor (local) or the whole model (global) loses round(fraction * alive) of its
surviving weights, as PyTorch's iterative `l1_unstructured` does (Python's round, half to even).
Ties in magnitude are broken by position (lower flat index pruned first), never by a threshold that
would remove every tied weight at once (biases all start at exactly zero).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from lth_tf import config
from lth_tf.errors import UserError
from lth_tf.sparsity.masks import Masks


def _check(masks: Mapping, weights: Mapping, fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--prune_fraction={fraction}: must lie strictly between 0 and 1")
    if set(masks) != set(weights):
        raise ValueError(f"masks and weights name different tensors: {sorted(set(masks) ^ set(weights))}")


def _n_to_prune(fraction: float, alive: int) -> int:
    return int(round(fraction * alive))


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
            flat_mask[alive[np.argsort(magnitude, kind="stable")[:n]]] = False
        out[name] = flat_mask.reshape(np.shape(mask))
    return out


def prune_global(masks: Masks, weights: Mapping[str, np.ndarray], fraction: float) -> Masks:
    """One ranking over all prunable weights: the model loses `fraction` of its surviving weights."""
    _check(masks, weights, fraction)
    names = list(masks)
    alive = [np.flatnonzero(np.asarray(masks[n], bool).ravel()) for n in names]
    magnitude = np.concatenate([np.abs(np.asarray(weights[n]).ravel()[a]) for n, a in zip(names, alive)])
    owner = np.concatenate([np.full(a.size, i, np.int64) for i, a in enumerate(alive)])
    position = np.concatenate(alive)
    n = _n_to_prune(fraction, magnitude.size)
    # Sort by magnitude, then tensor order, then position: lexsort's last key is the primary one.
    chosen = np.lexsort((position, owner, magnitude))[:n]
    out = {name: np.asarray(masks[name], bool).ravel().copy() for name in names}
    for i, name in enumerate(names):
        out[name][position[chosen[owner[chosen] == i]]] = False
    return {name: out[name].reshape(np.shape(masks[name])) for name in names}


STRATEGIES = {"local": prune_local, "global": prune_global}
assert tuple(STRATEGIES) == config.STRATEGIES, "config.STRATEGIES (the flag's choices) must list these"


def prune(masks: Masks, weights: Mapping[str, np.ndarray], fraction: float, strategy: str = "local") -> Masks:
    if strategy not in STRATEGIES:
        raise UserError(f"--strategy={strategy!r}: choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](masks, weights, fraction)


def random_masks_like(masks: Masks, seed: int) -> Masks:
    """Masks with the same number of survivors in every tensor, at random positions (a control)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in masks.items():
        flat = np.zeros(np.size(mask), bool)
        flat[rng.permutation(flat.size)[: int(np.sum(mask))]] = True
        out[name] = flat.reshape(np.shape(mask))
    return out
