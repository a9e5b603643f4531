"""Run the lth_tf benchmarks and write their numbers as JSON (see docs/benchmarks.md).

    python -m benchmarks.run [--quick] [--only=check,mask,peers,lstm,pipeline,level,speed] --out=benchmarks/results.json

Sections: `check` (FastLSTM and its research variants vs keras LSTM, numerically), `mask` (masked vs
unmasked step time), `peers` (ours vs tfmot vs PyTorch), `lstm` (FastLSTM and the LSTM computations of
benchmarks/lstm_variants.py side by side), `pipeline` (length bucketing vs padding on real IMDb), `level`
(one IMP level on real IMDb, split by phase, and projections of the full protocol), `speed` (--precision=bfloat16
and --xla against the default per train step, PyTorch float32 and autocast bfloat16, GFLOP/s and share of the
measured matmul peak: benchmarks/speed.py). --quick: few steps,
for a smoke test. A benchmark here is a script that prints what it measured; nothing is asserted.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

SECTIONS = ("check", "mask", "peers", "lstm", "pipeline", "level", "speed")


def _log(msg: str) -> None:
    print(msg, flush=True)


def _table(results: dict) -> str:
    lines = []
    mask = results.get("mask", {})
    if mask:
        lines += ["", "Mask overhead (seconds per step; ratios to unmasked; masked = re-masking, the tests' oracle; "
                      "gradmask = lth_tf's MaskedModel)",
                  f"{'shape':20s} {'unmasked':>10s} {'masked':>10s} {'gradmask':>10s} {'masked/unm':>11s} "
                  f"{'gradm/unm':>10s} {'masked-but-emb/unm':>19s}"]
        for name, r in mask.items():
            if "seconds_per_step" not in r:
                continue
            s = r["seconds_per_step"]
            diag = r["over_unmasked"].get("masked_but_embedding")
            mins = r.get("min_over_unmasked_min", {})
            lines.append(f"{name:20s} {s['unmasked']:10.4f} {s['masked']:10.4f} {s['gradmask']:10.4f} "
                         f"{r['masked_over_unmasked']:11.3f} {r['gradmask_over_unmasked']:10.3f} "
                         + (f"{diag:19.3f}" if diag is not None else f"{'-':>19s}")
                         + (f"   (fastest blocks: masked {mins['masked']:.3f}, gradmask {mins['gradmask']:.3f})"
                            if mins else ""))
        eq = mask.get("gradmask_equivalence")
        if eq:
            lines.append(f"gradmask vs masked weights after {eq['steps']} steps: max |diff| {eq['max_abs_weight_difference']:.3g}")
    peers = results.get("peers", {})
    if peers:
        lines += ["", "Peers (training samples/s, batch 64)"]
        names = sorted({n for r in peers.values() for n in r["samples_per_second"]},
                       key=lambda n: ["ours", "ours_fast", "tfmot", "torch_dense", "torch_masked",
                                      "torch_dense_padded"].index(n))
        lines.append(f"{'shape':10s} " + " ".join(f"{n:>18s}" for n in names))
        for shape, r in peers.items():
            lines.append(f"{shape:10s} " + " ".join(f"{r['samples_per_second'].get(n, float('nan')):18.1f}" for n in names))
        lines.append("time ratios (< 1: the first is faster)")
        for shape, r in peers.items():
            lines.append(f"{shape:10s} " + ", ".join(f"{k} {v:.2f}" for k, v in r["time_ratios"].items()))
    impls = results.get("lstm", {})
    if impls:
        lines += ["", "BiLSTM dense training step by computation (seconds per step; ratio to keras)"]
        for shape, r in impls.items():
            lines.append(f"{shape:10s} " + ", ".join(f"{n} {s:.3f} ({r['over_keras'][n]:.2f})"
                                                    for n, s in r["seconds_per_step"].items()))
    pipe = results.get("pipeline", {})
    if pipe.get("modes"):
        lines += ["", f"Input pipeline, IMDb train ({pipe['texts']:,} texts, mean length {pipe['length_mean']:.0f}, "
                      f"p95 {pipe['length_p95']})",
                  f"{'mode':10s} {'padding':>8s} {'dropped':>8s} {'pipeline/s':>11s} {'CNN train/s':>12s} {'bucket x':>9s}"]
        for name, m in pipe["modes"].items():
            lines.append(f"{name:10s} {100 * m['padding_fraction']:7.1f}% {100 * m['tokens_dropped_fraction']:7.1f}% "
                         f"{m['pipeline_samples_per_second']:11.0f} {m['train_samples_per_second']:12.1f} "
                         f"{pipe['bucket_speedup_in_training'][name]:9.2f}")
    lev = results.get("level", {})
    if lev.get("level"):
        lv, t = lev["level"], lev["level"]["timings"]
        lines += ["", "One IMP level, IMDb CNN (seconds)",
                  f"tokenisation (uncached) {lv['tokenisation']['seconds']:.1f} | training {t['train_steps']:.1f} "
                  f"({lv['steps']} steps; full epoch {t['train_steps_full_epoch']:.1f}) | evaluation valid "
                  f"{t['evaluate_valid']:.1f} + test {t['evaluate_test']:.1f} | pruning {t['prune']:.2f} | "
                  f"checkpointing {t['checkpointing']:.2f}"]
        lines += ["", "Projected full protocol on this machine",
                  f"{'config':26s} {'tasks':>5s} {'epochs':>6s} {'epoch min':>9s} {'task min':>9s} {'total h':>8s}"]
        for name, c in lev["projection"]["configs"].items():
            lines.append(f"{name:26s} {c['tasks']:5d} {c['epochs']:6.1f} {c['epoch_seconds'] / 60:9.1f} "
                         f"{c['task_seconds'] / 60:9.1f} {c['total_hours']:8.1f}")
    if results.get("speed"):
        from benchmarks import speed
        lines.append(speed.table(results["speed"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps per measurement (smoke test)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ",".join(SECTIONS))
    parser.add_argument("--out", default="benchmarks/results.json", help="JSON file to write")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")

    from lth_tf.keras import tf
    tf.get_logger().setLevel("ERROR")
    from benchmarks import common, imdb

    results = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(["python -m benchmarks.run"] + (argv if argv is not None else sys.argv[1:])),
               "quick": args.quick, "machine": common.machine_info(), "sections_seconds": {}, "load_average": {}}
    _log(f"machine: {results['machine']}")
    for section in SECTIONS:
        if section not in only:
            continue
        _log(f"\n=== {section} ===")
        start, load_before = time.perf_counter(), os.getloadavg()
        if section == "check":
            from benchmarks import fast_lstm_check
            results["check"] = {"scale_1": fast_lstm_check.check(log=_log),
                                "scale_4": fast_lstm_check.check(scale=4.0, log=_log),
                                "longer": fast_lstm_check.check(hidden=64, timesteps=60, batch=32, log=_log)}
        elif section == "mask":
            from benchmarks import mask
            results["mask"] = mask.run(args.quick, _log)
        elif section == "peers":
            from benchmarks import peers
            results["peers"] = peers.run(args.quick, _log)
        elif section == "lstm":
            from benchmarks import lstm_impls
            results["lstm"] = lstm_impls.run(args.quick, _log)
        elif section == "pipeline":
            from benchmarks import pipeline
            results["pipeline"] = pipeline.run(args.quick, _log)
        elif section == "level":
            from benchmarks import level
            results["level"] = level.run(args.quick, _log, known_costs=results.get("mask"))
        elif section == "speed":
            from benchmarks import speed
            results["speed"] = speed.run(args.quick, _log)
        results["sections_seconds"][section] = time.perf_counter() - start
        results["load_average"][section] = {"before": load_before, "after": os.getloadavg()}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:  # after every section, so a long run keeps what it measured
            json.dump(results, f, indent=1, default=float)
    imdb.cleanup()
    results["machine"]["other_job_running_at_end"] = not os.path.exists("/tmp/lth_cpu_free")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=float)
    _log(_table(results))
    _log(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
