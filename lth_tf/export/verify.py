"""Checking the exported models: the texts they are checked on, the Keras network's answers for each text
alone, a TFLite model's agreement and accuracy against them, and its latency."""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import numpy as np

from lth_tf.errors import UserError
from lth_tf.export.ticket import LoadedRun
from lth_tf.export.tflite import LiteRunner
from lth_tf.keras import keras, tf
from lth_tf.nets.models import EMBEDDING_LAYER, UNK_ID, probabilities


@dataclasses.dataclass
class Examples:
    ids: np.ndarray  # int32 [N, L], right-padded
    lengths: np.ndarray  # tokens kept (<= L)
    labels: np.ndarray | None
    source: str


def run_data(run: LoadedRun, data, log: Callable) -> tuple[object | None, str | None]:
    """(the run's PreparedData, None), prepared again if not given (normally from its cache), or (None, why
    not): the dataset is not available here, or its vocabulary is not the run's."""
    if data is None:
        try:
            from lth_tf.data import prepare_data

            cfg = run.cfg
            data = prepare_data(cfg.data, cfg.data.resolved_vocab_size(cfg.model.model), log=log)
        except (UserError, OSError, ImportError) as e:
            return None, f"the run's data is unavailable ({e})"
    if list(data.vocab) != list(run.vocab):
        return None, "the prepared data's vocabulary differs from the run's vocab.txt"
    return data, None


def verification_examples(run: LoadedRun, data, max_examples: int, length: int, log: Callable,
                          reason: str | None = None) -> Examples:
    """The first `max_examples` test texts of `data` (see run_data), truncated to `length` tokens; random ids
    if there is no data (then no accuracy is reported; `reason` says why)."""
    n = max(0, int(max_examples))
    if n > 0 and reason is None and (data is None or list(data.vocab) != list(run.vocab)):
        data, reason = run_data(run, data, log)
    if data is not None:
        split = data.test.take(np.arange(min(n, len(data.test))))
        lengths = np.minimum(split.lengths(), length).astype(np.int64)
        ids = np.zeros((len(split), length), np.int32)
        for i, (a, k) in enumerate(zip(split.offsets[:-1], lengths)):
            ids[i, :k] = split.token_ids[a:a + k]
        return Examples(ids, lengths, np.asarray(split.labels, np.int64),
                        f"test split, first {len(split)} of {len(data.test)} texts, truncated to {length} tokens")
    if reason:
        log(f"export: warning: {reason}; verifying on random token ids (no accuracy)")
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, length + 1, size=n)
    ids = np.zeros((n, length), np.int32)
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(2, len(run.vocab), size=k) if len(run.vocab) > 2 else UNK_ID
    return Examples(ids, lengths, None, f"{n} random token-id sequences" + (f" ({reason})" if reason else ""))


def keras_probabilities(model: keras.Model, ex: Examples, num_classes: int, batch: int = 128) -> np.ndarray:
    """The Keras model's probabilities for each text alone: its first `lengths[i]` ids, no padding. A network
    that masks padding (the LSTM) gives exactly that on the right-padded batch; otherwise (the CNN, whose
    convolutions see padding) texts of one length go through together, the same numbers as one at a time."""
    out = np.zeros((len(ex.lengths), num_classes), np.float32)
    keep = np.maximum(ex.lengths, 1)
    masked = bool(getattr(model.get_layer(EMBEDDING_LAYER), "mask_zero", False))
    groups = [np.arange(len(keep))] if masked else [np.flatnonzero(keep == n) for n in np.unique(keep)]
    for idx in groups:
        for start in range(0, len(idx), batch):
            chunk = idx[start:start + batch]
            logits = model(tf.constant(ex.ids[chunk, :int(keep[chunk].max())]), training=False)
            out[chunk] = probabilities(logits, num_classes).numpy()
    return out


def keras_accuracy(reference: np.ndarray, ex: Examples) -> float | None:
    """The Keras network's accuracy on the same (truncated) texts the TFLite models see."""
    return float(np.mean(reference.argmax(-1) == ex.labels)) if ex.labels is not None and len(ex.ids) else None


def verify_lite(runner: LiteRunner, ex: Examples, reference: np.ndarray, latency_runs: int) -> dict:
    probs = np.stack([runner.predict(row) for row in ex.ids]) if len(ex.ids) else np.zeros((0, reference.shape[1]))
    pred, ref_pred = probs.argmax(-1), reference.argmax(-1)
    result = {"examples": int(len(ex.ids)),
              "agreement": float(np.mean(pred == ref_pred)) if len(pred) else None,
              "disagreements": int(np.sum(pred != ref_pred)),
              "max_abs_probability_diff": float(np.abs(probs - reference).max()) if len(pred) else None,
              "accuracy": float(np.mean(pred == ex.labels)) if ex.labels is not None and len(pred) else None}
    result.update(latency(runner, ex, latency_runs))
    return result


def latency(runner: LiteRunner, ex: Examples, runs: int) -> dict:
    if runs <= 0:
        return {"latency_ms_median": None, "latency_runs": 0}
    rows = ex.ids if len(ex.ids) else np.zeros((1, runner.length), np.int32)
    for row in rows[:3]:  # warm-up
        runner.predict(row)
    times = []
    for i in range(runs):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        runner.predict(row)
        times.append(time.perf_counter() - start)
    return {"latency_ms_median": 1000 * statistics.median(times), "latency_runs": runs}


def describe_lite(key: str, info: dict, sizes: dict, examples: str) -> str:
    """One log line for a converted TFLite model: size, what it was compared with and how it came out."""
    agree, n = info.get("agreement"), info.get("examples", 0)
    parts = [f"export: {key}.tflite {sizes['raw_bytes']:,} B (gzip -9 {sizes['gzip_bytes']:,} B)"]
    if agree is not None:
        parts.append(f"same predicted class as the Keras network (each text alone) on {100 * agree:.1f}% of "
                     f"{n} {examples} ({info['disagreements']} differ; max probability difference "
                     f"{info['max_abs_probability_diff']:.1e})")
    if info.get("accuracy") is not None:
        parts.append(f"accuracy {100 * info['accuracy']:.2f}% (Keras on the same input "
                     f"{100 * info['keras_accuracy_same_input']:.2f}%)")
    zeros = info.get("pruned_zeros") or {}
    if zeros.get("fraction_kept") is not None:
        parts.append(f"pruned weights stored as 0: {100 * zeros['fraction_kept']:.2f}% of {zeros['pruned']:,}")
    parts.append(f"interpreter {info.get('runtime')}, {info.get('resolver')}")
    return "; ".join(parts)
