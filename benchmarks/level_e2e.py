"""One real IMP level end to end through `python -m lth_tf.main`: today's default against the speed options,
and one task per machine (--threads=2) against one task per core (two tasks side by side at --threads=1).

    python -m benchmarks.level_e2e --data_dir=/work/shared/data/imdb [--only=options,threads] [--rounds=2]
        [--epochs=1] [--out=benchmarks/level_e2e.json] [--quick]

Every measurement is a fresh run of the IMDb CNN preset (flags/imdb_cnn.cfg; --epochs, --patience=0 so every
level trains exactly --epochs epochs, --branches=ticket) in a fresh output directory, in two invocations:
`--levels=0` (level 0: build, train, validate every epoch, test, write weights and the rewind point), then
`--levels=1` on the same run (it extends it by one task: prune 20% from level 0's weights, rewind, train,
validate, test, write). Each invocation's wall time is measured (process start, TensorFlow import, data from
the cache, the task, the report); so is the task's own time (`seconds` in its metrics.json). The data is
tokenised once, before any timing, into a cache shared by every run.

- `options`: variants `default` (float32), `bfloat16` (--precision=bfloat16), `xla` (--xla: the train step
  compiled with XLA, training batches padded to XLA_LENGTH_BUCKETS; compile time included: each task compiles
  its step once per shape, and TF's persistent XLA cache, TF_XLA_FLAGS=--tf_xla_persistent_cache_directory,
  did not carry compilations from one task's model to the next in a trial), `eval256` (--eval_batch_size=256)
  and `bfloat16_eval256`, run one after another in rotating order, --rounds times. Printed: per variant the
  median wall time per level and task seconds, levels per hour, the ratio to `default` (first), and the
  accuracies (the options change the numbers).
- `threads`: one run at --threads=2 alone, then two runs (seeds 0 and 1) side by side at --threads=1, each
  level 0 then level 1; levels per hour = levels finished / wall time of the slowest. --extra passes more
  flags to every run (e.g. --extra=--precision=bfloat16).

--quick: the packaged IMDb sample with a tiny CNN, one round (a smoke test of the script, not a measurement).
Run it alone on the machine. Nothing is asserted: the script prints what it measured.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OPTIONS = {"default": [], "bfloat16": ["--precision=bfloat16"], "xla": ["--xla"],
           "eval256": ["--eval_batch_size=256"], "bfloat16_eval256": ["--precision=bfloat16", "--eval_batch_size=256"]}
QUICK_FLAGS = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=2000", "--embedding_dim=16", "--filters=8"]


def _log(msg: str) -> None:
    print(msg, flush=True)


def base_flags(args) -> list[str]:
    data = QUICK_FLAGS if args.quick else ["--flagfile=flags/imdb_cnn.cfg", f"--data_dir={os.path.abspath(args.data_dir)}"]
    return data + [f"--epochs={args.epochs}", "--patience=0", "--branches=ticket", f"--cache_dir={args.cache_dir}"] \
        + [e for e in args.extra if e]


def prepare_cache(flags: list[str]) -> float:
    """Tokenise once into the shared cache (untimed for the levels): the settings as lth_tf.main reads them."""
    code = ("import sys; from lth_tf.cli import config_from_args; from lth_tf.data import prepare_data; "
            "cfg = config_from_args(sys.argv[1:], 'benchmark'); "
            "prepare_data(cfg.data, cfg.data.resolved_vocab_size(cfg.model.model), log=print)")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *flags], cwd=ROOT, check=True)
    return time.perf_counter() - start


def launch(flags: list[str], levels: int, out: str, env: dict, log_path: str) -> subprocess.Popen:
    with open(log_path, "a") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "lth_tf.main", *flags, f"--levels={levels}",
                                 f"--output_dir={out}", "--progress=false"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_all(procs: list[subprocess.Popen], logs: list[str]) -> None:
    for proc, log in zip(procs, logs):
        if proc.wait() != 0:
            with open(log) as f:
                tail = f.read()[-3000:]
            sys.exit(f"lth_tf.main failed (exit {proc.returncode}); its log {log} ends:\n{tail}")


def level_metrics(out: str, level: int) -> list[dict]:
    found = []
    for path in sorted(glob.glob(os.path.join(out, "*", "r0", f"level_{level:02d}", "ticket", "metrics.json"))):
        with open(path) as f:
            m = json.load(f)
        found.append({k: m[k] for k in ("seconds", "valid_accuracy", "valid_loss", "test_accuracy", "test_loss",
                                        "epochs_trained", "steps")}
                     | {"epoch_seconds": [h["seconds"] for h in m["history"]]})
    return found


def run_levels(groups: list[tuple[list[str], str, dict]], workdir: str) -> dict:
    """Runs every (flags, output dir, env) side by side: level 0 together, then level 1 together. Returns the
    wall seconds of each step (the slowest process) and each run's task metrics."""
    out = {}
    for level in (0, 1):
        logs = [os.path.join(workdir, f"{os.path.basename(o)}.log") for _, o, _ in groups]
        start = time.perf_counter()
        procs = [launch(flags, level, o, env, log) for (flags, o, env), log in zip(groups, logs)]
        wait_all(procs, logs)
        wall = time.perf_counter() - start
        out[f"level_{level}"] = {"wall_seconds": wall, "tasks": [level_metrics(o, level)[0] for _, o, _ in groups]}
    return out


def options(args, flags: list[str], workdir: str) -> dict:
    names = [n for n in OPTIONS if n in args.variants.split(",")]
    records = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            out = tempfile.mkdtemp(prefix=f"{name}_r{r}_", dir=workdir)
            rec = run_levels([(flags + OPTIONS[name], out, dict(os.environ))], workdir)
            records[name].append(rec)
            _log(f"  round {r + 1}/{args.rounds} {name}: " + ", ".join(
                f"level {lv[-1]} wall {rec[lv]['wall_seconds']:.1f}s task {rec[lv]['tasks'][0]['seconds']:.1f}s "
                f"(epochs {', '.join(f'{s:.1f}' for s in rec[lv]['tasks'][0]['epoch_seconds'])}s) valid acc "
                f"{rec[lv]['tasks'][0]['valid_accuracy']:.4f} test acc {rec[lv]['tasks'][0]['test_accuracy']:.4f}"
                for lv in ("level_0", "level_1")))
            shutil.rmtree(out, ignore_errors=True)
    summary = {}
    for name, recs in records.items():
        s = {}
        for lv in ("level_0", "level_1"):
            wall = statistics.median(r[lv]["wall_seconds"] for r in recs)
            task = statistics.median(r[lv]["tasks"][0]["seconds"] for r in recs)
            s[lv] = {"wall_seconds": wall, "task_seconds": task, "levels_per_hour": 3600.0 / wall,
                     "task_levels_per_hour": 3600.0 / task,
                     "valid_accuracy": [r[lv]["tasks"][0]["valid_accuracy"] for r in recs],
                     "test_accuracy": [r[lv]["tasks"][0]["test_accuracy"] for r in recs]}
        summary[name] = s
    for name, s in summary.items():
        for lv in ("level_0", "level_1"):
            s[lv]["wall_over_default"] = s[lv]["wall_seconds"] / summary["default"][lv]["wall_seconds"] \
                if "default" in summary else None
            s[lv]["task_over_default"] = s[lv]["task_seconds"] / summary["default"][lv]["task_seconds"] \
                if "default" in summary else None
    return {"variants": names, "rounds": records, "summary": summary}


def threads(args, flags: list[str], workdir: str) -> dict:
    records = {"one_task_2_threads": [], "two_tasks_1_thread": []}
    for r in range(args.rounds):
        for name in (list(records) if r % 2 == 0 else list(records)[::-1]):
            if name == "one_task_2_threads":
                groups = [(flags + ["--threads=2", "--seed=0"], tempfile.mkdtemp(prefix="t2_", dir=workdir), dict(os.environ))]
            else:
                groups = [(flags + ["--threads=1", f"--seed={s}"], tempfile.mkdtemp(prefix=f"t1s{s}_", dir=workdir),
                           dict(os.environ)) for s in (0, 1)]
            rec = run_levels(groups, workdir)
            records[name].append(rec)
            _log(f"  round {r + 1}/{args.rounds} {name}: " + ", ".join(
                f"level {lv[-1]}: {len(rec[lv]['tasks'])} task(s) in {rec[lv]['wall_seconds']:.1f}s wall (task "
                + ", ".join(f"{t['seconds']:.1f}s" for t in rec[lv]['tasks']) + ")" for lv in ("level_0", "level_1")))
            for _, o, _ in groups:
                shutil.rmtree(o, ignore_errors=True)
    return {"rounds": records, "summary": threads_summary(records)}


def threads_summary(records: dict) -> dict:
    summary = {}
    for name, recs in records.items():
        summary[name] = {lv: {"wall_seconds": statistics.median(r[lv]["wall_seconds"] for r in recs),
                              "tasks": len(recs[0][lv]["tasks"]),
                              "levels_per_hour": statistics.median(len(r[lv]["tasks"]) * 3600.0 / r[lv]["wall_seconds"]
                                                                   for r in recs),
                              # without process start-up, data loading and the report: the tasks' own seconds
                              "task_levels_per_hour": statistics.median(
                                  len(r[lv]["tasks"]) * 3600.0 / max(t["seconds"] for t in r[lv]["tasks"]) for r in recs)}
                         for lv in ("level_0", "level_1")}
    for lv in ("level_0", "level_1"):
        for key in ("levels_per_hour", "task_levels_per_hour"):
            summary[f"ratio_{key}_{lv}"] = (summary["two_tasks_1_thread"][lv][key]
                                            / summary["one_task_2_threads"][lv][key])
    return summary


def report(results: dict) -> str:
    lines = []
    opt = results.get("options")
    if opt:
        lines += ["", "One IMP level end to end (median over rounds): ratio to default first (< 1 is faster)",
                  f"{'variant':18s} {'L1 wall x':>9s} {'L1 task x':>9s} {'L0 wall x':>9s} {'L1 wall s':>9s} "
                  f"{'L1 task s':>9s} {'L0 wall s':>9s} {'L1 levels/h':>11s}  accuracies (L1 valid / test)"]
        for name, s in opt["summary"].items():
            l0, l1 = s["level_0"], s["level_1"]
            lines.append(f"{name:18s} {l1['wall_over_default'] or float('nan'):9.3f} {l1['task_over_default'] or float('nan'):9.3f} "
                         f"{l0['wall_over_default'] or float('nan'):9.3f} {l1['wall_seconds']:9.1f} {l1['task_seconds']:9.1f} "
                         f"{l0['wall_seconds']:9.1f} {l1['levels_per_hour']:11.1f}  "
                         + ", ".join(f"{v:.4f}/{t:.4f}" for v, t in zip(l1["valid_accuracy"], l1["test_accuracy"])))
    thr = results.get("threads")
    if thr:
        s = thr["summary"]
        lines += ["", "Threads: levels per hour (median over rounds)"]
        for name in ("one_task_2_threads", "two_tasks_1_thread"):
            lines.append(f"{name:20s} " + ", ".join(
                f"level {lv[-1]}: {s[name][lv]['tasks']} task(s) in {s[name][lv]['wall_seconds']:.1f}s = "
                f"{s[name][lv]['levels_per_hour']:.1f} levels/h ({s[name][lv]['task_levels_per_hour']:.1f} by task "
                f"seconds)" for lv in ("level_0", "level_1")))
        lines.append("two tasks x 1 thread / one task x 2 threads, levels per hour (by wall time; by task seconds): "
                     + ", ".join(f"level {lv[-1]} {s[f'ratio_levels_per_hour_{lv}']:.3f}; "
                                 f"{s[f'ratio_task_levels_per_hour_{lv}']:.3f}" for lv in ("level_0", "level_1")))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="/work/shared/data/imdb", help="IMDb (ignored with --quick)")
    p.add_argument("--only", default="options,threads", help="comma-separated: options, threads")
    p.add_argument("--variants", default=",".join(OPTIONS), help="options to compare: " + ",".join(OPTIONS))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1, help="epochs per level (--patience=0: exactly this many)")
    p.add_argument("--extra", action="append", default=[], help="a flag passed to every run (repeatable)")
    p.add_argument("--cache_dir", default="", help="data cache (default: a fresh temporary one)")
    p.add_argument("--out", default="benchmarks/level_e2e.json")
    p.add_argument("--quick", action="store_true", help="the packaged sample, a tiny CNN, one round (smoke test)")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if set(only) - {"options", "threads"}:
        p.error(f"--only={args.only}: choose from options, threads")
    if args.quick:
        args.rounds = 1
    workdir = tempfile.mkdtemp(prefix="lth_level_e2e_")
    own_cache = not args.cache_dir
    args.cache_dir = args.cache_dir or os.path.join(workdir, "cache")
    flags = base_flags(args)
    results = {"command": " ".join(["python -m benchmarks.level_e2e"] + (argv if argv is not None else sys.argv[1:])),
               "flags": flags, "quick": args.quick, "load_average_at_start": os.getloadavg(), "cores": os.cpu_count()}
    try:
        _log(f"level_e2e: preparing the data cache ({' '.join(flags)})")
        results["tokenisation_seconds"] = prepare_cache(flags)
        if "options" in only:
            _log(f"level_e2e options: {args.variants} x {args.rounds} round(s)")
            results["options"] = options(args, flags, workdir)
        if "threads" in only:
            _log(f"level_e2e threads: --threads=2 alone vs 2 x --threads=1 side by side, {args.rounds} round(s)")
            results["threads"] = threads(args, flags, workdir)
    finally:
        if own_cache:
            shutil.rmtree(args.cache_dir, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    print(report(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=float)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
