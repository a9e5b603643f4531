"""3. Input pipeline on IMDb's real length distribution (the study's 28,000 training reviews).

Modes of `lth_tf.data.make_dataset` (batch 64, a training shuffle seed):
- `bucket`: bucket=True: windows of 50 batches sorted by length, each batch padded to its longest text;
- `no_bucket`: bucket=False: random batches, each padded to its longest text;
- `fixed_400`, `fixed_p95`: bucket=False, texts truncated to 400 tokens / the 95th percentile of the
  training lengths and every batch padded to exactly that length (what a fixed-shape pipeline does);
  these drop the truncated tokens, so they are not the same data.
Measured: the padding fraction over the whole epoch (exact, from the batch plan), the samples/s of the
pipeline alone (one full epoch, nothing else), and the samples/s of CNN training fed by it (the CNN
trained by `lth_tf.training.MaskedModel`, blocks of consecutive batches interleaved between modes).
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks import imdb
from benchmarks.common import BATCH, Runner, interleave, masked_model, train_step
from lth_tf.keras import keras, tf


def _modes(lengths):
    p95 = int(np.percentile(lengths, 95))
    return {"bucket": dict(bucket=True, fixed=0), "no_bucket": dict(bucket=False, fixed=0),
            "fixed_400": dict(bucket=False, fixed=400), "fixed_p95": dict(bucket=False, fixed=p95)}, p95


def dataset(split, mode: dict, seed: int):
    from lth_tf.data import make_dataset
    ds = make_dataset(split, BATCH, shuffle_seed=seed, bucket=mode["bucket"], max_len=mode["fixed"])
    if mode["fixed"]:
        length = mode["fixed"]
        ds = ds.map(lambda x, y: (tf.pad(x, [[0, 0], [0, length - tf.shape(x)[1]]]), y))
    return ds


def padding_stats(split, mode: dict, seed: int) -> dict:
    from lth_tf.data import plan_batches
    lengths = split.lengths()
    kept = np.minimum(lengths, mode["fixed"]) if mode["fixed"] else lengths
    batches = plan_batches(kept, BATCH, seed, mode["bucket"])
    cells = sum(len(b) * (mode["fixed"] or int(kept[b].max())) for b in batches)
    return {"padding_fraction": 1.0 - float(kept.sum()) / cells,
            "tokens_dropped_fraction": 1.0 - float(kept.sum()) / float(lengths.sum()),
            "batches": len(batches), "cells": int(cells)}


class _Feed:
    """Consecutive batches of one mode's epochs (a new epoch, and seed, when one runs out)."""

    def __init__(self, split, mode, seed):
        self.split, self.mode, self.seed = split, mode, seed
        self.it = iter(dataset(split, mode, seed))

    def next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.seed += 1
            self.it = iter(dataset(self.split, self.mode, self.seed))
            return next(self.it)


def run(quick: bool, log=print) -> dict:
    if not imdb.available():
        log("pipeline: lth_tf.data or the IMDb data is missing: skipped")
        return {"skipped": "lth_tf.data or /work/shared/data/imdb missing"}
    data, _ = imdb.imdb(50_000, log)
    split = data.train
    if quick:
        split = split.take(np.arange(0, len(split), 4))  # a quarter, same distribution
    lengths = split.lengths()
    modes, p95 = _modes(lengths)
    out = {"texts": len(split), "length_mean": float(lengths.mean()), "length_median": float(np.median(lengths)),
           "length_p95": p95, "length_max": int(lengths.max()), "modes": {}}
    log(f"pipeline: {len(split):,} IMDb training texts, mean length {lengths.mean():.0f}, p95 {p95}, "
        f"max {lengths.max()}")
    for name, mode in modes.items():
        out["modes"][name] = {"settings": mode, **padding_stats(split, mode, seed=1)}

    # The pipeline alone: one full epoch per mode, twice, alternating.
    alone = {name: [] for name in modes}
    for rep in range(2):
        for name, mode in modes.items():
            start, n = time.perf_counter(), 0
            for x, y in dataset(split, mode, seed=10 + rep):
                n += int(y.shape[0])
            alone[name].append(n / (time.perf_counter() - start))
    for name in modes:
        out["modes"][name]["pipeline_samples_per_second"] = float(np.median(alone[name]))

    # CNN training fed by each pipeline.
    from benchmarks.common import Shape
    cnn = Shape("cnn", 0, len(data.vocab), 0, 0)
    k = 8 if quick else 25
    rounds = 3 if quick else 4
    blocks = {}
    for name, mode in modes.items():
        keras.utils.set_random_seed(0)
        from lth_tf.config import ModelConfig
        from lth_tf.nets.models import build_model
        step, sync = train_step(masked_model(build_model(ModelConfig(model="cnn"), len(data.vocab), 2, 0)))
        feed = _Feed(split, mode, seed=100)
        runner = Runner(lambda x, y, step=step, feed=feed: step(*feed.next()), [(0, 0)], sync=sync)
        blocks[name] = lambda r=runner: r.block(k)
    log(f"pipeline: CNN training, {k} batches per block, {rounds} rounds")
    t = interleave(blocks, rounds, log, "pipeline")
    for name in modes:
        out["modes"][name]["train_seconds_per_batch"] = t[name]["median"]
        out["modes"][name]["train_samples_per_second"] = BATCH / t[name]["median"]
        out["modes"][name]["all_blocks"] = t[name]["all"]
        out["modes"][name]["train_cpu_seconds_per_batch"] = t[name]["cpu_median"]
    base = out["modes"]["bucket"]["train_samples_per_second"]
    out["bucket_speedup_in_training"] = {name: base / m["train_samples_per_second"] for name, m in out["modes"].items()}
    for name, m in out["modes"].items():
        log(f"  {name:10s}: padding {100 * m['padding_fraction']:.1f}%, tokens dropped "
            f"{100 * m['tokens_dropped_fraction']:.1f}%, pipeline {m['pipeline_samples_per_second']:,.0f} samples/s, "
            f"CNN training {m['train_samples_per_second']:,.0f} samples/s")
    return out
