"""Projects the study's full grid on N workers of this machine's speed with the makespan model
(lth_tf.lottery.makespan), from a measured IMDb CNN run (1 thread per task) and stated scale factors for
the configurations not measured. Prints the assumptions and the table; writes a JSON for the study report.

    python -m benchmarks.projection --run_dir=/path/to/cnn_imdb_<hash> [--epochs_per_level=4] [--out=p.json]

N workers run one task each, at the thread count of the measured run's tasks.

The grid: 4 configurations (IMDb/AG News x CNN/BiLSTM) x 3 modes (winning ticket, late rewinding,
fine-tuning) x 3 replicates x (the dense level + 20 levels x ticket, reinit, random_mask), one task graph.
"""
from __future__ import annotations

import argparse
import json

from lth_tf.lottery.makespan import DurationModel, GridRun, duration_models, project
from lth_tf.rundir import RunDir

# Per-task cost relative to the measured IMDb CNN task, per epoch, and epochs per level in the protocol.
# AG News: 3x the examples (84,000 + 36,000 vs 28,000 + 12,000) at about 43 instead of 270 tokens per text
# (cost ~ tokens for both networks): 3 * 43/270 = 0.48 per epoch. BiLSTM: about 10x the CNN per epoch on
# this CPU (docs/benchmarks.md, issue "Speed"). The study ran 10 fixed epochs for AG News and the LSTMs.
CONFIGS = {  # name: (cost per epoch relative to IMDb CNN, epochs per level)
    "imdb_cnn": (1.0, None),  # None: --epochs_per_level (early stopping; the real run averaged about 4)
    "ag_news_cnn": (0.48, 10),
    "imdb_lstm": (10.0, 10),
    "ag_news_lstm": (4.8, 10),
}
MODES, REPLICATES, LEVELS, BRANCHES = 3, 3, 20, ("ticket", "reinit", "random_mask")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run_dir", required=True, help="a measured IMDb CNN run (its per-task seconds)")
    p.add_argument("--measured_epochs", type=int, default=0, help="epochs per level of that run (0: each task's "
                   "own epochs_trained, from its metrics: the run's seconds per epoch)")
    p.add_argument("--epochs_per_level", type=float, default=4.0, help="IMDb CNN epochs per level (early stopping)")
    p.add_argument("--workers", default="1,4,16,64,256")
    p.add_argument("--out", default="")
    a = p.parse_args()
    run = RunDir.open(a.run_dir)
    (measured,) = duration_models([run]).values()
    if a.measured_epochs:
        per_epoch = measured.branch_mean() / a.measured_epochs
        basis = f"{measured.describe()} ({a.measured_epochs} epochs per level)"
    else:
        tasks = [m for m in run.finished_metrics() if m.get("epochs_trained")]
        per_epoch = sum(m["seconds"] for m in tasks) / sum(m["epochs_trained"] for m in tasks)
        basis = f"{len(tasks)} tasks of {run.name}, {sum(m['epochs_trained'] for m in tasks)} epochs"
    threads = run.settings().train.threads
    print(f"measured: {basis} -> {per_epoch:.0f} s per IMDb CNN epoch at {threads} thread(s) per task")
    models, grid, hours = {}, [], {}
    for name, (cost, epochs) in CONFIGS.items():
        epochs = epochs or a.epochs_per_level
        seconds = per_epoch * cost * epochs
        model = DurationModel()
        for branch in BRANCHES:
            model.add(branch, 1, seconds)
        model.add("ticket", 0, seconds)
        models[name] = model
        grid += [GridRun(name, LEVELS, BRANCHES, REPLICATES) for _ in range(MODES)]
        run_hours = REPLICATES * (1 + LEVELS * len(BRANCHES)) * seconds / 3600
        for mode in ("ticket", "late_rewind", "finetune"):
            dataset, model_name = name.rsplit("_", 1)
            hours[f"{dataset}/{model_name}/{mode}"] = round(run_hours, 1)
        print(f"  {name}: {cost:g} x per epoch, {epochs:g} epochs per level -> {seconds:.0f} s per task, "
              f"{run_hours:.1f} h per run of {REPLICATES} replicates on one worker")
    workers = [int(n) for n in a.workers.split(",")]
    print(f"\ngrid: {len(grid)} runs, {sum(REPLICATES * (1 + LEVELS * len(BRANCHES)) for _ in grid)} tasks")
    print("      N  makespan (h)  utilisation %  critical path (h)")
    for s in project(grid, models, workers):
        bound = "  critical-path bound" if s.critical_path_bound else ""
        print(f"  {s.workers:5d}  {s.makespan / 3600:12.1f}  {100 * s.utilisation:13.1f}  {s.critical_path / 3600:17.1f}{bound}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(hours, f, indent=1)


if __name__ == "__main__":
    main()
