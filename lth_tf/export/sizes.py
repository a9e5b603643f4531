"""How big the exported models are. Pruned weights are stored as zeros, so raw sizes do not shrink: gzip -9
(each file alone) is the honest size. Also the parameter counts and the embedding's share of a file."""
from __future__ import annotations

import gzip
import os

import numpy as np

from lth_tf.export.tflite import LiteRunner
from lth_tf.nets.models import EMBEDDING_LAYER

GZIP_LEVEL = 9
GZIP_NOTE = f"gzip level {GZIP_LEVEL} of each file (directories: each file alone, summed)"


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))


def file_sizes(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    return {"raw_bytes": len(data), "gzip_bytes": gzip_size(data)}


def dir_sizes(path: str) -> dict:
    """Sum over the files of a directory of their raw and gzip -9 sizes (each file compressed alone)."""
    raw = gz = 0
    for folder, _, files in os.walk(path):
        for name in sorted(files):
            s = file_sizes(os.path.join(folder, name))
            raw, gz = raw + s["raw_bytes"], gz + s["gzip_bytes"]
    return {"raw_bytes": raw, "gzip_bytes": gz}


def saved_model_sizes(path: str) -> dict:
    """A SavedModel's `variables/` (raw and gzip -9), and its whole directory's raw size (graph and
    vocabulary constant included)."""
    return {**dir_sizes(os.path.join(path, "variables")), "whole_dir_raw_bytes": dir_sizes(path)["raw_bytes"]}


def parameter_counts(weights: dict[str, np.ndarray]) -> dict:
    total = sum(int(w.size) for w in weights.values())
    nonzero = sum(int(np.count_nonzero(w)) for w in weights.values())
    emb = weights.get(f"{EMBEDDING_LAYER}/embeddings")
    emb_total = int(emb.size) if emb is not None else 0
    emb_nonzero = int(np.count_nonzero(emb)) if emb is not None else 0
    return {"total": total, "nonzero": nonzero, "zero_fraction": 1 - nonzero / total if total else 0.0,
            "embedding": emb_total, "embedding_nonzero": emb_nonzero,
            "embedding_share": emb_total / total if total else 0.0,
            "embedding_share_of_nonzero": emb_nonzero / nonzero if nonzero else 0.0}


def embedding_bytes(runner: LiteRunner, shape: tuple, file_size: dict) -> dict | None:
    """The embedding's stored buffer in a TFLite file: raw and gzip -9 of that buffer alone, and its share of
    the file's raw and gzip sizes (gzip is not additive over parts: the gzip share is an estimate)."""
    values = runner.find_tensor(shape)
    if values is None:
        return None
    data = np.ascontiguousarray(values).tobytes()
    raw, gz = len(data), gzip_size(data)
    return {"dtype": str(values.dtype), "raw_bytes": raw, "gzip_bytes": gz,
            "share_of_raw": raw / file_size["raw_bytes"], "share_of_gzip": gz / file_size["gzip_bytes"]}


def ratio(a, b):
    return a / b if a is not None and b else None


def ratios_ticket_vs_dense(sizes: dict) -> dict:
    """{format: {raw, gzip}} of the ticket's size over the dense network's, per format both have."""
    ratios = {}
    for fmt in ("saved_model", "float", "int8", "pqat_int8"):
        d, t = sizes.get(f"dense/{fmt}"), sizes.get(f"ticket/{fmt}")
        if d and t:
            ratios[fmt] = {"raw": ratio(t["raw_bytes"], d["raw_bytes"]), "gzip": ratio(t["gzip_bytes"], d["gzip_bytes"])}
    return ratios
