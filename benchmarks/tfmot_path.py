"""--masking=tfmot vs --masking=native: seconds per training step, and their ratio.

    python -m benchmarks.tfmot_path [--quick] [--shapes=cnn@50,lstm@50] [--out=benchmarks/tfmot_path.json]

Both variants are lth_tf's own step as `train` runs it (`make_train_step`, Adam, FastLSTM for the LSTM),
on the same model (same seed), the same 20% random masks and the same synthetic batches (batch 64,
full-length ids): `native` is `lth_tf.training.MaskedModel` (masked gradients), `tfmot` is
`lth_tf.sparsity.tfmot_masking.TfmotMaskedModel` (tfmot's wrappers mask the weights before every layer
computes, and again after Adam's update). Blocks interleave in time (benchmarks.common.interleave); the
ratio tfmot/native is of the medians (> 1: tfmot is slower). --quick: a few steps, a smoke test.
Nothing is asserted: it prints what it measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys

from benchmarks.common import BATCH, SHAPES, Runner, build_keras, interleave, machine_info, masked_model, \
    shape_by_name, synthetic_batches, train_step
from lth_tf.sparsity.tfmot_masking import TfmotMaskedModel
from lth_tf.training import MaskedModel

VARIANTS = {"native": MaskedModel, "tfmot": TfmotMaskedModel}


def run(quick: bool, log=print, shapes=SHAPES) -> dict:
    results = {}
    for shape in shapes:
        k = shape.quick_steps if quick else shape.steps
        rounds = 2 if quick else (3 if shape.model == "lstm" else 5)
        batches = synthetic_batches(shape, 4)
        log(f"tfmot_path {shape.name}: {k} steps per block, {rounds} rounds")
        blocks = {}
        for name, cls in VARIANTS.items():
            step, sync = train_step(masked_model(build_keras(shape, fast_lstm=True), cls))
            runner = Runner(step, batches, sync=sync)
            blocks[name] = lambda r=runner: r.block(k)
        t = interleave(blocks, rounds, log, shape.name)
        per_step = {n: v["median"] for n, v in t.items()}
        results[shape.name] = {
            "model": shape.model, "length": shape.length, "vocab": shape.vocab, "batch": BATCH,
            "steps_per_block": k, "rounds": rounds, "seconds_per_step": per_step,
            "samples_per_second": {n: BATCH / s for n, s in per_step.items()},
            "tfmot_over_native": per_step["tfmot"] / per_step["native"],
            "cpu_tfmot_over_native": t["tfmot"]["cpu_median"] / t["native"]["cpu_median"],
            "all_blocks": {n: v["all"] for n, v in t.items()},
        }
        log(f"  {shape.name}: native {per_step['native'] * 1e3:.1f} ms, tfmot {per_step['tfmot'] * 1e3:.1f} ms "
            f"per step; tfmot/native {results[shape.name]['tfmot_over_native']:.2f}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per block: a smoke test")
    parser.add_argument("--shapes", default=",".join(s.name for s in SHAPES),
                        help="comma-separated, from " + ", ".join(s.name for s in SHAPES))
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        shapes = [shape_by_name(name.strip()) for name in args.shapes.split(",") if name.strip()]
    except KeyError as e:
        parser.error(f"--shapes: unknown shape {e}; choose from " + ", ".join(s.name for s in SHAPES))
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results = {"started": started, "quick": args.quick, "machine": machine_info(),
               "tfmot_path": run(args.quick, shapes=shapes)}
    print("\ntfmot/native seconds per step (> 1: tfmot slower)")
    for name, r in results["tfmot_path"].items():
        print(f"  {name:10s} {r['tfmot_over_native']:.2f} (CPU time {r['cpu_tfmot_over_native']:.2f})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
