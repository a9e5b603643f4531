"""Why Keras' LSTM is slower than PyTorch's on a CPU: the same BiLSTM model, dense training step
(`common.UnmaskedModel`), with each LSTM computation of `benchmarks.lstm_variants`, interleaved:

- `keras`: keras.layers.LSTM (tf.while_loop; x_t @ kernel, h @ recurrent, per-step tf.where for the mask,
  automatic gradient of the loop);
- `block`: TensorFlow's fused BlockLSTM op (C++ loop, Eigen matmul of [x_t, h] per step; input
  projection not hoisted);
- `scan`: input projection hoisted out of the loop (one matmul), loop and gradient as Keras (autodiff);
- `hoisted`: hoisted projection + hand-written gradient (per-step loop does only the cell and dz @ R^T;
  the recurrent kernel's gradient is one big matmul) -- `lth_tf.nets.fast_lstm.FastLSTM`, what lth_tf
  trains with;
- `hoisted_fused`: as hoisted, both directions of each Bidirectional in one loop (batched matmuls).
"""
from __future__ import annotations

from benchmarks.common import SHAPES, Runner, UnmaskedModel, build_keras, interleave, masked_model, \
    synthetic_batches, train_step
from benchmarks.lstm_variants import with_fast_lstm

IMPLS = ("keras", "block", "scan", "hoisted", "hoisted_fused")


def matmul_gflop_per_step(length: int, batch: int = 64, emb: int = 100, hidden: int = 256, layers: int = 2) -> float:
    """The matmul work of one training step of the BiLSTM: forward 2 x B x T x (in + H) x 4H per direction
    and layer; the backward pass twice that (gradients of the inputs and of the weights)."""
    forward, inp = 0, emb
    for _ in range(layers):
        forward += 2 * (2 * batch * length * (inp + hidden) * 4 * hidden)
        inp = 2 * hidden
    return 3 * forward / 1e9


def run(quick: bool, log=print, shapes=SHAPES) -> dict:
    results = {}
    for shape in [s for s in shapes if s.model == "lstm"]:
        k = shape.quick_steps if quick else shape.steps
        rounds = 3
        batches = synthetic_batches(shape, 4)
        log(f"lstm implementations {shape.name}: {k} steps per block, {rounds} rounds")
        blocks = {}
        for impl in IMPLS:
            model = build_keras(shape)
            if impl != "keras":
                model = with_fast_lstm(model, impl.replace("_fused", ""), fuse=impl.endswith("_fused"))
            step, sync = train_step(masked_model(model, UnmaskedModel, sparsity=0.0))
            runner = Runner(step, batches, sync=sync)
            blocks[impl] = lambda r=runner: r.block(k)
        t = interleave(blocks, rounds, log, shape.name)
        per_step = {n: v["median"] for n, v in t.items()}
        gflop = matmul_gflop_per_step(shape.length)
        results[shape.name] = {"steps_per_block": k, "rounds": rounds, "seconds_per_step": per_step,
                               "matmul_gflop_per_step": gflop,
                               "matmul_gflop_per_second": {n: gflop / s for n, s in per_step.items()},
                               "over_keras": {n: s / per_step["keras"] for n, s in per_step.items()},
                               "all_blocks": {n: v["all"] for n, v in t.items()},
                               "cpu_seconds_per_step": {n: v["cpu_median"] for n, v in t.items()}}
        log(f"  {shape.name} matmul work {gflop:.1f} GFLOP per step; GFLOP/s: "
            + ", ".join(f"{n} {gflop / v:.0f}" for n, v in per_step.items()))
        log(f"  {shape.name} time / keras: " + ", ".join(f"{n} {v:.2f}" for n, v in results[shape.name]["over_keras"].items()))
    return results
