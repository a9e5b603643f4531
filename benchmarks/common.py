"""Shared pieces of the benchmarks: the four shapes, synthetic batches, train steps, interleaved timing."""
from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import subprocess
import time
from typing import Callable

import numpy as np

from lth_tf.config import ModelConfig
from lth_tf.keras import keras, tf
from lth_tf.nets.models import build_model
from lth_tf.sparsity.registry import Selection
from lth_tf.training import MaskedModel

BATCH = 64
SPARSITY = 0.2  # masks of the first pruned level (20% of every tensor pruned, at random positions)


@dataclasses.dataclass(frozen=True)
class Shape:
    """One benchmarked configuration: a model and a text length (batch 64, binary labels)."""
    model: str          # "cnn" or "lstm"
    length: int
    vocab: int
    steps: int          # timed steps per block (full run)
    quick_steps: int    # timed steps per block (--quick)

    @property
    def name(self) -> str:
        return f"{self.model}@{self.length}"

    def config(self) -> ModelConfig:
        return ModelConfig(model=self.model)  # the study's sizes: CNN 100x{3,4,5}, BiLSTM 2x256, emb 100


# AG-News-like (~50 tokens) and IMDb-like (~250 tokens); the study's vocabularies (CNN 50k, LSTM 25k).
SHAPES = (
    Shape("cnn", 50, 50_000, steps=40, quick_steps=5),
    Shape("cnn", 250, 50_000, steps=12, quick_steps=3),
    Shape("lstm", 50, 25_000, steps=4, quick_steps=1),
    Shape("lstm", 250, 25_000, steps=2, quick_steps=1),
)


def shape_by_name(name: str) -> Shape:
    return {s.name: s for s in SHAPES}[name]


def synthetic_batches(shape: Shape, n: int, seed: int = 0, batch: int = BATCH):
    """`n` batches of full-length random token ids (no padding) and binary labels, as numpy."""
    rng = np.random.default_rng(seed)
    return [(rng.integers(2, shape.vocab, size=(batch, shape.length)).astype(np.int32),
             rng.integers(0, 2, size=(batch,)).astype(np.int32)) for _ in range(n)]


def build_keras(shape: Shape, seed: int = 0, init: str = "study", fast_lstm: bool = False,
                precision: str = "float32") -> keras.Model:
    """The model lth_tf builds for `shape`; fast_lstm: with FastLSTM layers, as lth_tf trains the LSTM;
    precision: lth_tf's --precision (float32, or bfloat16 = Keras' mixed_bfloat16 policy)."""
    cfg = dataclasses.replace(shape.config(), init=init)
    return build_model(cfg, shape.vocab, 2, seed, fast_lstm=fast_lstm, precision=precision)


def masked_model(model: keras.Model, cls=MaskedModel, sparsity: float = SPARSITY, seed: int = 0) -> MaskedModel:
    mm = cls(model, 2, Selection())
    rng = np.random.default_rng(seed)
    mm.set_masks({n: rng.random(s) >= sparsity for n, s in mm.shapes.items()})
    return mm


class UnmaskedModel(MaskedModel):
    """`MaskedModel`'s train step without any masking: the same model, loss, optimizer and bookkeeping."""

    def _apply_update(self, optimizer, variables, grads, gradient_masks) -> None:
        optimizer.apply_gradients(zip(grads, variables))


def train_step(mm: MaskedModel, jit_compile: bool = False):
    """`mm.make_train_step` with a fresh Adam: (the compiled step, a sync function that waits for it);
    jit_compile: compiled with XLA, as lth_tf's --xla does."""
    optimizer = keras.optimizers.Adam(learning_rate=5e-3)
    totals = tf.Variable(tf.zeros([3]), trainable=False)
    return mm.make_train_step(optimizer, totals, jit_compile=jit_compile), totals.numpy


class Runner:
    """A warmed-up train step over a list of batches: `block(k)` times k steps, returns seconds per step."""

    def __init__(self, step: Callable, batches, sync: Callable | None = None, warmup: int = 2):
        self.step, self.sync = step, sync
        self.batches = [(tf.constant(x), tf.constant(y)) for x, y in batches] if batches and not callable(
            batches) else batches
        self.i = 0
        for _ in range(warmup):
            self._one()
        self._sync()

    def _sync(self):
        if self.sync is not None:
            self.sync()

    def _one(self):
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.step(x, y)

    def block(self, k: int) -> tuple[float, float]:
        """(wall seconds per step, CPU seconds of this process per step). Blocks of 5 or more steps start
        with one untimed step, which absorbs what the previous variant's block left behind (caches,
        allocator state): without it a variant timed right after a heavy one measured up to 20% slower."""
        if k >= 5:
            self._one()
        self._sync()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(k):
            self._one()
        self._sync()
        return (time.perf_counter() - start) / k, (time.process_time() - cpu) / k


def interleave(blocks: dict[str, Callable[[], tuple[float, float]]], rounds: int, log=print, label: str = "") -> dict:
    """Run every variant's timed block once per round, in rotating order (A B C, B C A, ...), and return
    {variant: {"median": s, "all": [...], "cpu_median": s}}: wall seconds per step (and the CPU seconds per
    step of the process that ran it: under contention from other jobs, wall time stretches, CPU time less)."""
    names = list(blocks)
    times = {n: [] for n in names}
    cpus = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            wall, cpu = blocks[n]()
            times[n].append(wall)
            cpus[n].append(cpu)
        log(f"  {label} round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1] * 1e3:.1f} ms" for n in names))
    return {n: {"median": statistics.median(times[n]), "min": min(times[n]), "all": times[n],
                "cpu_median": statistics.median(cpus[n])} for n in names}


def machine_info() -> dict:
    from lth_tf import machine

    cpu = machine.cpu()
    model, features = cpu["model"], cpu["features"]
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    return {"cpu_model": model, "cpu_features": features, "cores": os.cpu_count(), "memory_bytes": mem,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "tf_keras": keras.__version__, "load_average_at_start": os.getloadavg(),
            "other_job_running": not os.path.exists("/tmp/lth_cpu_free")}


def torch_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("torch") is not None


class TorchWorker:
    """`benchmarks.torch_peer` in a child process (PyTorch and TensorFlow never share a process or their
    thread pools); `block(variant, k)` times k steps there, so its blocks interleave with TF's."""

    def __init__(self, shape: Shape, variants, warmup: int = 2):
        import json
        import sys
        args = json.dumps({"model": shape.model, "length": shape.length, "vocab": shape.vocab, "batch": BATCH,
                           "variants": list(variants), "warmup": warmup})
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.torch_peer", args], cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict:
        import json
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyTorch worker exited (code {self.proc.wait()})")
        return json.loads(line)

    def block(self, variant: str, k: int) -> tuple[float, float]:
        import json
        self.proc.stdin.write(json.dumps({"variant": variant, "steps": k}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        return answer["seconds_per_step"], answer["cpu_seconds_per_step"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
