"""Where one real IMDb CNN level spends its time, per precision: the training steps of one epoch, and the
validation (12,000 reviews) and test (10,000) passes at evaluation batch 64 (today's) and 256.

    LTH_IMDB_DIR=../shared/data/imdb LTH_BENCH_CACHE=/tmp/cache python -m benchmarks.level_phases [--quick]

One process; the study's CNN (flags/imdb_cnn.cfg's model: vocabulary 50,000, embedding 100, 100 filters of
3/4/5), masks dense, batches as a run makes them (bucketed by length, padded to each batch's longest review).
For each precision (float32, then bfloat16, then float32 again, so drift in the machine's speed shows) it
trains one epoch and times its steps alone (validation is run separately), then each evaluation pass, each
after a warm-up pass. Ratios to float32 at batch 64 are printed first. Nothing is asserted. Run it alone.
"""
from __future__ import annotations

import argparse
import json
import time

from benchmarks import imdb


def phases(data, precision: str, quick: bool, log) -> dict:
    from lth_tf.config import ModelConfig, TrainConfig
    from lth_tf.data import make_dataset
    from lth_tf.keras import keras
    from lth_tf.nets.models import build_model
    from lth_tf.sparsity import masks as masks_lib
    from lth_tf.training import MaskedModel, train

    keras.backend.clear_session()
    mm = MaskedModel(build_model(ModelConfig(model="cnn"), len(data.vocab), 2, 0, precision=precision), 2)
    mm.set_masks(masks_lib.dense_masks(mm.shapes))
    cap = 40 if quick else None
    batches = lambda seed: make_dataset(data.train, 64, shuffle_seed=seed, bucket=True).take(cap or -1)
    start = time.perf_counter()
    result = train(mm, batches, lambda: make_dataset(data.valid, 256).take(1), TrainConfig(epochs=1, patience=0),
                   seed=0, log=lambda m: None, progress=False)
    out = {"train_epoch_s": time.perf_counter() - start, "steps": result.steps}
    for split in ("valid", "test"):
        for batch in (64, 256):
            ds = make_dataset(getattr(data, split), batch)
            if quick:
                ds = ds.take(10)
            mm.evaluate(ds)  # warm-up: traces this batch shape family
            start = time.perf_counter()
            mm.evaluate(ds)
            out[f"{split}_{batch}_s"] = time.perf_counter() - start
    log(f"  {precision}: " + ", ".join(f"{k} {v:.1f}" for k, v in out.items()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 training steps, 10 evaluation batches (smoke test)")
    parser.add_argument("--out", default="", help="JSON file to write")
    args = parser.parse_args(argv)
    data, _ = imdb.imdb(50_000)
    rounds = [("float32", phases(data, "float32", args.quick, print)),
              ("bfloat16", phases(data, "bfloat16", args.quick, print)),
              ("float32", phases(data, "float32", args.quick, print))]
    f32 = {k: (rounds[0][1][k] + rounds[2][1][k]) / 2 for k in rounds[0][1]}
    bf16 = rounds[1][1]
    print("\nphase                    float32 s  bfloat16 s  bf16/f32   (float32: mean of the two float32 rounds)")
    for key in f32:
        if key != "steps":
            print(f"{key:24} {f32[key]:9.1f}  {bf16[key]:10.1f}  {bf16[key] / f32[key]:8.2f}")
    level = {p: r["train_epoch_s"] + r["valid_64_s"] for p, r in (("float32", f32), ("bfloat16", bf16))}
    fast = {p: r["train_epoch_s"] + r["valid_256_s"] for p, r in (("float32", f32), ("bfloat16", bf16))}
    print(f"\nan epoch with its validation: float32 batch 64 {level['float32']:.1f}s; bfloat16 batch 64 "
          f"{level['bfloat16']:.1f}s ({level['bfloat16'] / level['float32']:.2f}); bfloat16 with validation at 256 "
          f"{fast['bfloat16']:.1f}s ({fast['bfloat16'] / level['float32']:.2f})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rounds": rounds, "float32_mean": f32}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
