"""Tasks per hour of one real IMDb CNN run, local executor (one process, 2 threads) vs Ray (2 workers x
1 thread), side by side in one invocation; then the makespan model's prediction of the Ray run's wall time
from its own per-task seconds, and its error. Prints what it measured (docs/scaling.md has a record).

    python -m benchmarks.scaling --data_dir=../shared/data/imdb [--levels=2 --epochs=2] [--out=/tmp/scaling]

Run it alone on the machine: both executors share its cores.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(label: str, args: list[str], env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--branches", default="ticket,reinit")
    p.add_argument("--out", default=tempfile.mkdtemp(prefix="scaling-"))
    a = p.parse_args()
    common = ["--flagfile=flags/imdb_cnn.cfg", f"--data_dir={a.data_dir}", f"--levels={a.levels}",
              f"--epochs={a.epochs}", "--patience=0", f"--branches={a.branches}", "--progress=false"]
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    env = dict(os.environ, RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    tasks = 1 + a.levels * len(a.branches.split(","))
    results = {}
    for label, extra in (("local, 1 process x 2 threads", ["--threads=2"]),
                         ("ray, 2 workers x 1 thread", ["--threads=1", "--executor=ray"])):
        out = os.path.join(a.out, label.split(",")[0])
        wall = run(label, common + extra + [f"--output_dir={out}"], env)
        (run_dir,) = glob.glob(os.path.join(out, "cnn_imdb_*"))
        seconds = [json.load(open(f))["seconds"] for f in glob.glob(os.path.join(run_dir, "r*", "level_*", "*",
                                                                                   "metrics.json"))]
        results[label] = {"wall_s": wall, "tasks": tasks, "tasks_per_hour": tasks / wall * 3600,
                          "task_seconds_sum": sum(seconds), "run_dir": run_dir}
        print(f"{label}: {tasks} tasks in {wall:.0f} s wall = {tasks / wall * 3600:.2f} tasks/h "
              f"(sum of task seconds {sum(seconds):.0f} s)", flush=True)
    local, ray = results.values()
    print(f"ratio ray / local tasks per hour: {ray['tasks_per_hour'] / local['tasks_per_hour']:.3f}")
    proc = subprocess.run([sys.executable, "-m", "lth_tf.lottery.makespan", f"--run_dir={ray['run_dir']}",
                           "--workers=1,2", f"--measured_s={ray['wall_s']:.1f}", "--measured_workers=2"],
                          cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout + proc.stderr)
    with open(os.path.join(a.out, "scaling.json"), "w") as f:
        json.dump(results, f, indent=2)
    subprocess.run(["pkill", "-9", "-f", ray_tmp], check=False)


if __name__ == "__main__":
    main()
