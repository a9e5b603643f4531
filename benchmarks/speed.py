"""Per training step: lth_tf's speed options against today's default, PyTorch beside them, and how close each
comes to this machine's measured matmul peak.

    python -m benchmarks.speed [--quick] [--shapes=cnn@50,cnn@250,lstm@50,lstm@250] [--out=benchmarks/speed.json]

(also `python -m benchmarks.run --only=speed`). For each shape of benchmarks.common (CNN and BiLSTM at
lengths 50 and 250, batch 64, 20% random masks, synthetic full-length ids), the real train step
(`MaskedModel.make_train_step`, FastLSTM for the BiLSTM) in these variants, their blocks interleaved in one
process (rotating order, median over rounds):
- `default`: float32, no XLA (lth_tf's default, what it trained with before these options);
- `bfloat16`: `--precision=bfloat16` (Keras' mixed_bfloat16 policy, float32 weights, masks and logits);
- `xla`, `xla_bfloat16` (CNN only; lth_tf refuses --xla for the LSTM): the step compiled with XLA
  (`jit_compile`); the batches here have one shape, so this excludes compile time and the extra padding
  to XLA's length buckets (benchmarks/level_e2e.py measures those on real data);
- PyTorch (if installed; in a child process, its blocks interleaved with TensorFlow's): `torch_dense`,
  `torch_masked` (float32; `torch.nn.utils.prune`) and the same under `torch.autocast("cpu", bfloat16)`.

FLOPs of one training step (matmul and convolution work only; `train_step_flops`): a product of an [m, k]
and a [k, n] matrix is 2·m·k·n FLOPs, and its backward pass is two products of the same size (the gradients
with respect to its input, needed because the embedding trains, and to its weights), so a training step is
3x the forward work. Elementwise ops, gathers, the loss and Adam's update are not counted.
- CNN (embedding E=100, F=100 filters of each width w in {3,4,5}, batch B, length T, at least 5): forward
  sum_w 2·B·(T-w+1)·(w·E)·F for the convolutions + 2·B·3F for the output layer. B=64: 2.16 GFLOP per
  step at T=50, 11.37 GFLOP at T=250.
- BiLSTM (2 layers x 2 directions, H=256, input E=100 to layer 1 and 2H to layer 2): forward
  sum over layers and directions 2·B·T·(in+H)·4H (the input projection and the recurrent product of each
  step) + 2·B·2H for the output layer. B=64: 44.20 GFLOP per step at T=50, 220.99 GFLOP at T=250 (the
  counts in docs/benchmarks.md).
Peak: the best of a few large square matmuls in TensorFlow (n=4096; --quick 1024), float32 and bfloat16,
in this process with its default threads. A variant's share of peak is its GFLOP/s over the peak of its
compute precision (PyTorch's too: the TensorFlow matmul is the yardstick of what these cores do).
Nothing is asserted: the script prints what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks.common import BATCH, SHAPES, Runner, TorchWorker, build_keras, interleave, masked_model, \
    shape_by_name, synthetic_batches, torch_available, train_step

TF_VARIANTS = {"default": ("float32", False), "bfloat16": ("bfloat16", False),
               "xla": ("float32", True), "xla_bfloat16": ("bfloat16", True)}
TORCH_VARIANTS = ("dense", "masked", "dense_bf16", "masked_bf16")


def train_step_flops(model: str, length: int, batch: int = BATCH, embedding: int = 100, filters: int = 100,
                     widths=(3, 4, 5), hidden: int = 256, layers: int = 2, outputs: int = 1) -> float:
    """Matmul/convolution FLOPs of one training step (forward + backward = 3x forward; module docstring)."""
    if model == "cnn":
        t = max(length, max(widths))
        forward = sum(2 * batch * (t - w + 1) * (w * embedding) * filters for w in widths)
        forward += 2 * batch * filters * len(widths) * outputs
    else:
        forward = 0
        for layer in range(layers):
            width = embedding if layer == 0 else 2 * hidden
            forward += 2 * (2 * batch * length * (width + hidden) * 4 * hidden)  # two directions
        forward += 2 * batch * 2 * hidden * outputs
    return 3.0 * forward


def matmul_peak(dtype: str, n: int, reps: int = 3) -> float:
    """GFLOP/s of the best of `reps` [n, n] x [n, n] matmuls in TensorFlow (after one warm-up)."""
    from lth_tf.keras import tf
    a = tf.cast(tf.random.stateless_normal([n, n], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([n, n], seed=[3, 4]), dtype)
    mm = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    mm(a, b).numpy()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        mm(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def _precision_of(variant: str) -> str:
    return "bfloat16" if variant.endswith("bf16") or variant.endswith("bfloat16") else "float32"


def run(quick: bool, log=print, shapes=SHAPES) -> dict:
    n = 1024 if quick else 4096
    peak = {dtype: matmul_peak(dtype, n, reps=2 if quick else 3) for dtype in ("float32", "bfloat16")}
    log(f"speed: matmul peak ({n}x{n}): float32 {peak['float32']:.0f} GFLOP/s, bfloat16 {peak['bfloat16']:.0f} GFLOP/s")
    results = {"peak_gflops": peak, "peak_matmul_n": n, "shapes": {}}
    has_torch = torch_available()
    if not has_torch:
        log("speed: PyTorch is not installed (pip install torch==2.13.0): its columns are skipped")
    for shape in shapes:
        k = shape.quick_steps if quick else shape.steps
        rounds = 2 if quick else (3 if shape.model == "lstm" else 5)
        batches = synthetic_batches(shape, 4)
        log(f"speed {shape.name}: {k} steps per block, {rounds} rounds")
        blocks = {}
        for name, (precision, jit) in TF_VARIANTS.items():
            if jit and shape.model != "cnn":
                continue
            model = build_keras(shape, fast_lstm=shape.model == "lstm", precision=precision)
            step, sync = train_step(masked_model(model), jit_compile=jit)
            runner = Runner(step, batches, sync=sync)  # the warm-up traces (and compiles) the step
            blocks[name] = lambda r=runner: r.block(k)
        worker = None
        if has_torch:
            worker = TorchWorker(shape, TORCH_VARIANTS)
            for v in TORCH_VARIANTS:
                blocks[f"torch_{v}"] = lambda v=v: worker.block(v, k)
        try:
            t = interleave(blocks, rounds, log, shape.name)
        finally:
            if worker is not None:
                worker.close()
        flops = train_step_flops(shape.model, shape.length)
        per_step = {name: v["median"] for name, v in t.items()}
        gflops = {name: flops / s / 1e9 for name, s in per_step.items()}
        res = {"model": shape.model, "length": shape.length, "batch": BATCH, "steps_per_block": k, "rounds": rounds,
               "flops_per_step": flops, "seconds_per_step": per_step,
               "over_default": {name: s / per_step["default"] for name, s in per_step.items()},
               "samples_per_second": {name: BATCH / s for name, s in per_step.items()},
               "gflops": gflops,
               "fraction_of_peak": {name: g / peak[_precision_of(name)] for name, g in gflops.items()},
               "all_blocks": {name: v["all"] for name, v in t.items()},
               "cpu_seconds_per_step": {name: v["cpu_median"] for name, v in t.items()},
               "torch": worker.info if worker is not None else None}
        results["shapes"][shape.name] = res
        log(f"  {shape.name} ({flops / 1e9:.2f} GFLOP/step): " + ", ".join(
            f"{name} {per_step[name] * 1e3:.1f} ms (x{res['over_default'][name]:.2f}, {gflops[name]:.0f} GFLOP/s, "
            f"{100 * res['fraction_of_peak'][name]:.0f}% of peak)" for name in per_step))
    return results


def table(results: dict) -> str:
    shapes = results.get("shapes", {})
    if not shapes:
        return ""
    peak = results["peak_gflops"]
    names = list(dict.fromkeys(n for r in shapes.values() for n in r["seconds_per_step"]))
    lines = ["", "Train step time over today's default (float32, no XLA); < 1 is faster",
             f"{'variant':20s} " + " ".join(f"{s:>10s}" for s in shapes)]
    for n in names:
        lines.append(f"{n:20s} " + " ".join(f"{r['over_default'][n]:10.3f}" if n in r["over_default"] else f"{'-':>10s}"
                                            for r in shapes.values()))
    lines += ["", f"Seconds per step | GFLOP/s | % of peak (float32 {peak['float32']:.0f}, bfloat16 "
                  f"{peak['bfloat16']:.0f} GFLOP/s)"]
    for s, r in shapes.items():
        lines.append(f"{s} ({r['flops_per_step'] / 1e9:.2f} GFLOP/step): " + ", ".join(
            f"{n} {r['seconds_per_step'][n]:.4f} s | {r['gflops'][n]:.0f} | {100 * r['fraction_of_peak'][n]:.0f}%"
            for n in r["seconds_per_step"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, a small peak matmul (smoke test)")
    parser.add_argument("--shapes", default=",".join(s.name for s in SHAPES), help="comma-separated, e.g. cnn@50,lstm@250")
    parser.add_argument("--out", default="benchmarks/speed.json", help="JSON file to write")
    args = parser.parse_args(argv)
    from lth_tf.keras import tf
    tf.get_logger().setLevel("ERROR")
    from benchmarks.common import machine_info
    shapes = [shape_by_name(s.strip()) for s in args.shapes.split(",") if s.strip()]
    results = {"machine": machine_info(), "quick": args.quick, **run(args.quick, shapes=shapes,
                                                                     log=lambda m: print(m, flush=True))}
    print(table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=float)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
