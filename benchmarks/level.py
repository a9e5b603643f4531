"""4. One IMP level end to end on real IMDb (CNN), and projections of the study's full protocol.

The level does what `lth_tf.lottery.Experiment.run` does for one task, each part timed:
- tokenisation: `prepare_data` of IMDb into an empty cache (read, split, tokenise, vocabulary);
- training: `lth_tf.training.train` for 1 epoch (its validation pass included, reported separately);
  --quick caps the epoch at a number of batches and projects the full epoch from the rate;
- evaluation: `MaskedModel.evaluate` on the validation (12,000) and test (10,000) reviews;
- pruning: `prune_local` of 20% of the survivors from the trained weights (`masks()` and
  `prunable_values()` copies included);
- checkpointing: the `.npz` files a task writes (trained weights compressed, masks, the rewind point
  uncompressed) and its metrics JSON.

Projection of the study's protocol for the four configurations (flags/{imdb,ag_news}_{cnn,lstm}.cfg:
levels, branches, epochs, patience): tasks = 1 + levels x branches; per task: epochs x (training over the
training split + a validation pass) + a test pass + the measured per-task overhead. Step times come from
a linear model per network, seconds per batch = a + b x padded length, fitted to the train-step (and
evaluation-step) times measured on synthetic batches at lengths 50 and 250, applied to the mean padded
length of each dataset's bucketed batches (IMDb: the real training split; AG News: the 7,600-text test
split's lengths, the only AG News split on this machine). IMDb CNN epochs: the mean `epochs_trained` of
the finished levels of an IMDb CNN run under runs/ if any, else the maximum.
"""
from __future__ import annotations

import glob
import gzip
import itertools
import math
import os
import shutil
import tempfile
import time

import numpy as np

from benchmarks import imdb
from benchmarks.common import BATCH, Runner, Shape, build_keras, masked_model, synthetic_batches, train_step
from lth_tf import atomic
from lth_tf.sparsity import masks as masks_lib
from lth_tf.config import ModelConfig, TrainConfig
from lth_tf.keras import keras, tf
from lth_tf.nets.models import build_model
from lth_tf.sparsity.pruning import prune_local
from lth_tf.training import MaskedModel, train
from tests.oracles import RemaskingModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AG_NEWS_TEST = os.environ.get("LTH_AG_NEWS_TEST", "/work/shared/data/ag_news/test.csv.gz")
SIZES = {"imdb": {"train": 28_000, "valid": 12_000, "test": 10_000},
         "ag_news": {"train": 84_000, "valid": 36_000, "test": 7_600}}


def _flags(name: str) -> dict:
    out = {}
    path = os.path.join(ROOT, "flags", f"{name}.cfg")
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("--") and "=" in line:
                k, v = line[2:].split("=", 1)
                out[k] = v
    return {"levels": int(out.get("levels", 20)), "branches": out.get("branches", "ticket,reinit").split(","),
            "epochs": int(out.get("epochs", 20 if name == "imdb_cnn" else 10)),
            "patience": int(out.get("patience", 0)), "source": os.path.relpath(path, ROOT)}


def _measured_imdb_cnn_epochs() -> dict | None:
    epochs, runs = [], set()
    for path in glob.glob(os.path.join(ROOT, "runs", "*", "r*", "level_*", "*", "metrics.json")):
        run_dir = path.split(os.sep)[-5]
        if "cnn" not in run_dir or "imdb" not in run_dir:
            continue
        try:
            epochs.append(int(atomic.read_json(path)["epochs_trained"]))
            runs.add(run_dir)
        except (OSError, KeyError, ValueError):
            continue
    if not epochs:
        return None
    return {"mean": float(np.mean(epochs)), "tasks": len(epochs), "runs": sorted(runs)}


def _capped(ds, cap):
    return itertools.islice(ds, cap) if cap else ds


def one_level(quick: bool, log=print) -> dict:
    from lth_tf.data import make_dataset
    data, prep = imdb.imdb(50_000, log)
    out = {"tokenisation": {"seconds": prep["seconds"], "uncached": not prep["cache_hit"],
                            "timings": prep["timings"]}}
    uncached = imdb.uncached_preparation()
    if uncached is not None:
        out["tokenisation"] = {"seconds": uncached["seconds"], "uncached": True, "timings": uncached["timings"]}
    n_batches = math.ceil(len(data.train) / BATCH)
    cap = 60 if quick else 0
    keras.utils.set_random_seed(0)
    mm = MaskedModel(build_model(ModelConfig(model="cnn"), len(data.vocab), 2, 0), 2)
    theta0 = mm.snapshot()
    mm.set_masks(masks_lib.dense_masks(mm.shapes))

    log(f"level: training 1 epoch of {len(data.train):,} reviews" + (f" (capped at {cap} batches)" if cap else ""))
    cfg = TrainConfig(epochs=1, patience=2)
    start = time.perf_counter()
    result = train(mm, lambda epoch: _capped(make_dataset(data.train, BATCH, shuffle_seed=epoch, bucket=True), cap),
                   lambda: make_dataset(data.valid, BATCH), cfg, seed=0, log=lambda m: log("  " + m), progress=False)
    train_wall = time.perf_counter() - start
    steps = result.steps

    timings = {}
    start = time.perf_counter()
    mm.evaluate(make_dataset(data.valid, BATCH))
    timings["evaluate_valid"] = time.perf_counter() - start
    start = time.perf_counter()
    test = mm.evaluate(make_dataset(data.test, BATCH))
    timings["evaluate_test"] = time.perf_counter() - start
    training_only = train_wall - timings["evaluate_valid"]
    timings["train_steps"] = training_only
    timings["train_steps_full_epoch"] = training_only * n_batches / steps

    start = time.perf_counter()
    new_masks = prune_local(mm.masks(), mm.prunable_values(), 0.2)
    timings["prune"] = time.perf_counter() - start

    tmp = tempfile.mkdtemp(prefix="lth_bench_ckpt_")
    try:
        start = time.perf_counter()
        snap = mm.snapshot()
        timings["snapshot"] = time.perf_counter() - start
        start = time.perf_counter()
        atomic.write_npz(os.path.join(tmp, "weights.npz"), snap)
        timings["write_weights_npz_compressed"] = time.perf_counter() - start
        start = time.perf_counter()
        masks_lib.save_masks(os.path.join(tmp, "mask.npz"), new_masks)
        timings["write_mask_npz"] = time.perf_counter() - start
        start = time.perf_counter()
        atomic.write_npz(os.path.join(tmp, "rewind.npz"), theta0, compressed=False)
        timings["write_rewind_npz"] = time.perf_counter() - start
        start = time.perf_counter()
        atomic.write_json(os.path.join(tmp, "metrics.json"), {"history": result.history, "test": test})
        timings["write_metrics_json"] = time.perf_counter() - start
        sizes = {f: os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    timings["checkpointing"] = sum(timings[k] for k in ("snapshot", "write_weights_npz_compressed",
                                                         "write_mask_npz", "write_rewind_npz", "write_metrics_json"))
    out.update(timings=timings, file_bytes=sizes, steps=steps, batches_per_epoch=n_batches,
               train_wall_seconds=train_wall, history=result.history, test_accuracy=test["accuracy"],
               train_samples_per_second=steps * BATCH / training_only)
    t = timings
    log(f"  tokenisation {out['tokenisation']['seconds']:.1f}s | training {t['train_steps']:.1f}s for {steps} steps "
        f"({out['train_samples_per_second']:.0f} samples/s; full epoch {t['train_steps_full_epoch']:.1f}s) | "
        f"evaluation valid {t['evaluate_valid']:.1f}s test {t['evaluate_test']:.1f}s | prune {t['prune']:.2f}s | "
        f"checkpointing {t['checkpointing']:.2f}s")
    return out


def _padded_lengths_mean(lengths: np.ndarray, seed: int = 1) -> float:
    """Mean over the bucketed training batches of each batch's padded length (the batch's longest text)."""
    from lth_tf.data import plan_batches
    batches = plan_batches(lengths, BATCH, seed, True)
    return float(np.mean([lengths[b].max() for b in batches]))


def _ag_news_lengths() -> np.ndarray | None:
    if not os.path.exists(AG_NEWS_TEST):
        return None
    from lth_tf.data import tokenize
    from lth_tf.data.sources import RawData, read_ag_news_csv
    with gzip.open(AG_NEWS_TEST, "rb") as f:
        texts, _ = read_ag_news_csv(f.read(), AG_NEWS_TEST, 4, RawData([], {}))
    return np.array([len(tokenize(t)) for t in texts])


def _eval_step_time(mm, batch, reps=3) -> float:
    x, y = tf.constant(batch[0]), tf.constant(batch[1])
    mm._eval_step(x, y)
    start = time.perf_counter()
    for _ in range(reps):
        float(mm._eval_step(x, y)[0])
    return (time.perf_counter() - start) / reps


def step_costs(quick: bool, log=print, known: dict | None = None) -> dict:
    """Seconds per batch of 64 at lengths 50 and 250, training and evaluation, for the CNN and the FastLSTM
    BiLSTM as lth_tf trains them (`MaskedModel`, gradient masking), and for the BiLSTM as lth_tf trained it
    before (keras.layers.LSTM, the weights re-masked after every step: `tests.oracles.RemaskingModel`).
    Training times from section 1 (`known`) when it ran, else measured here."""
    known = known or {}
    costs = {}
    for net in ("cnn", "lstm_keras", "lstm_fast"):
        model = "cnn" if net == "cnn" else "lstm"
        before = net == "lstm_keras"
        for length in (50, 250):
            shape = Shape(model, length, 50_000 if model == "cnn" else 25_000, 0, 0)
            batches = synthetic_batches(shape, 2)
            mm = masked_model(build_keras(shape, fast_lstm=net == "lstm_fast"),
                              RemaskingModel if before else MaskedModel)
            key = f"{model}@{length}" + {"cnn": "", "lstm_keras": "[keras]", "lstm_fast": "[hoisted]"}[net]
            variant = "masked" if before else "gradmask"  # section 1's names
            train_s = known.get(key, {}).get("seconds_per_step", {}).get(variant)
            if train_s is None:
                step, sync = train_step(mm)
                runner = Runner(step, batches, sync=sync, warmup=1)
                k = 1 if model == "lstm" else (3 if quick else 10)
                train_s = min(runner.block(k)[0] for _ in range(2))
            eval_s = _eval_step_time(mm, batches[0], reps=1 if model == "lstm" else 5)
            costs[f"{net}@{length}"] = {"train": train_s, "eval": eval_s}
            log(f"  cost {net}@{length}: train {train_s * 1e3:.0f} ms/batch, eval {eval_s * 1e3:.0f} ms/batch")
    return costs


def _linear(costs, net, kind, length):
    t50, t250 = costs[f"{net}@50"][kind], costs[f"{net}@250"][kind]
    b = (t250 - t50) / 200.0
    return max(t50 + b * (length - 50), 1e-6)


def project(level: dict, costs: dict, log=print) -> dict:
    data, _ = imdb.imdb(50_000, log)
    lengths = {"imdb": data.train.lengths()}
    ag = _ag_news_lengths()
    if ag is not None:
        lengths["ag_news"] = ag
    padded = {name: _padded_lengths_mean(l) for name, l in lengths.items()}
    measured = _measured_imdb_cnn_epochs()
    per_task_overhead = level["timings"]["prune"] + level["timings"]["checkpointing"]
    out = {"padded_length_mean": padded, "length_mean": {n: float(l.mean()) for n, l in lengths.items()},
           "imdb_cnn_measured_epochs": measured, "per_task_overhead_seconds": per_task_overhead, "configs": {}}
    for dataset in ("imdb", "ag_news"):
        if dataset not in padded:
            continue
        for model in ("cnn", "lstm"):
            flags = _flags(f"{dataset}_{model}")
            epochs, epochs_source = flags["epochs"], f"{flags['source']} (--epochs, patience {flags['patience']})"
            if dataset == "imdb" and model == "cnn" and measured:
                epochs, epochs_source = measured["mean"], f"measured mean epochs_trained of {measured['tasks']} tasks"
            tasks = 1 + flags["levels"] * len(flags["branches"])
            sizes = SIZES[dataset]
            for net in (["cnn"] if model == "cnn" else ["lstm_keras", "lstm_fast"]):
                length = padded[dataset]
                train_b, eval_b = _linear(costs, net, "train", length), _linear(costs, net, "eval", length)
                source = "linear model from synthetic lengths 50/250"
                if dataset == "imdb" and model == "cnn":
                    # measured on the real data: training rate of section 4, evaluation from its passes
                    train_b = BATCH / level["train_samples_per_second"]
                    eval_b = level["timings"]["evaluate_valid"] / math.ceil(sizes["valid"] / BATCH)
                    source = "measured on real IMDb (section 4)"
                epoch = math.ceil(sizes["train"] / BATCH) * train_b + math.ceil(sizes["valid"] / BATCH) * eval_b
                task = epochs * epoch + math.ceil(sizes["test"] / BATCH) * eval_b + per_task_overhead
                name = f"{dataset}_{model}" + ("" if model == "cnn" else "_keras_lstm" if net == "lstm_keras"
                                               else "_fast_lstm")
                out["configs"][name] = {
                    "tasks": tasks, "levels": flags["levels"], "branches": flags["branches"], "epochs": epochs,
                    "epochs_source": epochs_source, "padded_length": length, "train_seconds_per_batch": train_b,
                    "eval_seconds_per_batch": eval_b, "step_source": source, "epoch_seconds": epoch,
                    "task_seconds": task, "total_hours": tasks * task / 3600.0}
                log(f"  projection {name}: {tasks} tasks x {epochs:.1f} epochs, epoch {epoch / 60:.1f} min, "
                    f"task {task / 60:.1f} min, total {tasks * task / 3600:.1f} h on this machine")
    return out


def run(quick: bool, log=print, known_costs: dict | None = None) -> dict:
    if not imdb.available():
        log("level: lth_tf.data or the IMDb data is missing: skipped")
        return {"skipped": "lth_tf.data or /work/shared/data/imdb missing"}
    level = one_level(quick, log)
    costs = step_costs(quick, log, known_costs)
    return {"level": level, "step_costs": costs, "projection": project(level, costs, log)}
