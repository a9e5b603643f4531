"""Masks: one boolean array per prunable weight (True = alive), keyed by the registry's stable names.

Plain `{name: np.ndarray}` dicts, saved as `.npz`, so they can be inspected and diffed with numpy.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from lth_tf import atomic
from lth_tf.atomic import DamagedFile
from lth_tf.errors import UserError
from lth_tf.nets import EMBEDDING_LAYER

Masks = dict[str, np.ndarray]


def dense_masks(shapes: Mapping[str, tuple]) -> Masks:
    return {name: np.ones(shape, dtype=bool) for name, shape in shapes.items()}


def save_masks(path: str, masks: Masks) -> None:
    atomic.write_npz(path, {name: np.asarray(m, dtype=bool) for name, m in masks.items()})


def load_masks(path: str) -> Masks:
    """Masks from an .npz; FileNotFoundError if absent, DamagedFile if unreadable or not boolean."""
    arrays = atomic.read_npz(path)
    bad = [k for k, v in arrays.items() if v.dtype != bool]
    if bad:
        raise DamagedFile(path, f"mask arrays must be boolean, not {arrays[bad[0]].dtype} ({bad[0]})")
    return arrays


def validate_masks(masks: Masks, shapes: Mapping[str, tuple], source: str = "masks") -> None:
    """Raise UserError unless `masks` has exactly the names and shapes of the model's prunable weights."""
    missing = sorted(set(shapes) - set(masks))
    extra = sorted(set(masks) - set(shapes))
    if missing or extra:
        raise UserError(f"{source}: do not match the model: missing {missing or 'none'}, extra {extra or 'none'}")
    for name, shape in shapes.items():
        if tuple(masks[name].shape) != tuple(shape):
            raise UserError(f"{source}: {name} has shape {tuple(masks[name].shape)}, the model's is {tuple(shape)}")


def sparsity_report(masks: Masks) -> dict:
    """Fraction pruned per tensor, overall, and overall without the embedding."""
    per_tensor = {name: {"size": int(m.size), "alive": int(m.sum()), "sparsity": 1.0 - float(m.mean())}
                  for name, m in masks.items()}

    def overall(names):
        size = sum(per_tensor[n]["size"] for n in names)
        alive = sum(per_tensor[n]["alive"] for n in names)
        return {"size": size, "alive": alive, "sparsity": (1.0 - alive / size) if size else 0.0}

    non_embedding = [n for n in masks if not n.startswith(EMBEDDING_LAYER + "/")]
    return {"tensors": per_tensor, "overall": overall(list(masks)), "without_embedding": overall(non_embedding)}


def format_report(report: dict) -> str:
    lines = [f"{'tensor':40s} {'size':>10s} {'alive':>10s} {'pruned':>8s}"]
    for name, r in report["tensors"].items():
        lines.append(f"{name:40s} {r['size']:10d} {r['alive']:10d} {100 * r['sparsity']:7.2f}%")
    for key in ("overall", "without_embedding"):
        r = report[key]
        lines.append(f"{key:40s} {r['size']:10d} {r['alive']:10d} {100 * r['sparsity']:7.2f}%")
    return "\n".join(lines)
