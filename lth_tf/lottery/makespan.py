"""A makespan model of a sweep (issue "Scale out on Ray"): how long would these runs take on N workers?

The scheduler (lth_tf.lottery.scheduler) submits a task once its dependencies are done, longest remaining
chain first (then lowest level), at most `capacity` tasks in flight. `simulate` replays exactly that policy in
simulated time with measured per-task seconds, so a sweep's wall time on N workers is predicted without a
cluster, and a measured run checks the model. Two bounds frame every answer: total work / N, and the critical
path (the longest chain of dependent tasks: a trajectory's levels 0..L, run one after another). Past N ~ work /
critical path more workers cannot help; a row is marked "critical-path bound" when the makespan is within 5% of
the critical path.

    python -m lth_tf.lottery.makespan --run_dir=runs/cnn_imdb_<hash>[,...] --workers=1,2,4,16,64,256 \\
        [--runs=12 --levels=20 --replicates=3 --branches=ticket,reinit,random_mask] [--overhead_s=0] \\
        [--measured_s=SECONDS --measured_workers=2]

Not modelled: tasks slowing each other down on a shared machine (measured seconds carry whatever contention
the measured run had), data transfer, failures and retries. A fixed per-task overhead (worker start, data
load: time outside a task's own `seconds`) can be added with --overhead_s.
"""
from __future__ import annotations

import dataclasses
import heapq
from types import SimpleNamespace
from typing import Callable

from absl import flags

from lth_tf import cli
from lth_tf.config import ExperimentConfig, RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery.scheduler import priority
from lth_tf.lottery.tasks import dependencies, plan
from lth_tf.rundir import RunDir, Task

FLAGS = flags.FLAGS
COMMAND = "lth_tf.lottery.makespan"
SUMMARY = "Predict a sweep's wall time on N workers from measured task times and the task graph."
BOUND = 0.05  # "critical-path bound": makespan within 5% of the critical path


@dataclasses.dataclass
class Schedule:
    """One simulated sweep: when each (run index, task) started and ended, in seconds from the start."""
    workers: int
    makespan: float
    critical_path: float
    work: float  # busy seconds of all workers together (durations + overheads)
    start: dict = dataclasses.field(repr=False)
    end: dict = dataclasses.field(repr=False)

    @property
    def utilisation(self) -> float:
        return self.work / (self.workers * self.makespan) if self.makespan else 0.0

    @property
    def critical_path_bound(self) -> bool:
        return self.makespan <= (1 + BOUND) * self.critical_path


def _graph(tasks_by_run: list[list[Task]]) -> tuple[list[tuple[int, Task]], dict]:
    """(run index, task) in plan order and what each waits for. A dependency outside the given tasks counts as done
    (the real scheduler finds it finished on disk)."""
    items = [(j, t) for j, tasks in enumerate(tasks_by_run) for t in tasks]
    known = set(items)
    return items, {i: [(i[0], d) for d in dependencies(i[1]) if (i[0], d) in known] for i in items}


def critical_path(tasks_by_run, duration: Callable[[int, Task], float], overhead_s: float = 0.0) -> float:
    """The longest path through the graph by durations (overheads included): the makespan on unlimited
    workers, and a lower bound on any makespan."""
    items, needs = _graph(tasks_by_run)
    finish = {}
    for item in sorted(items, key=lambda i: i[1].level):  # a task's dependencies are at lower levels
        finish[item] = max((finish[d] for d in needs[item]), default=0.0) + duration(*item) + overhead_s
    return max(finish.values(), default=0.0)


def simulate(tasks_by_run: list[list[Task]], duration: Callable[[int, Task], float], workers: int,
             levels_by_run: list[int], overhead_s: float = 0.0) -> Schedule:
    """List scheduling in simulated time with the scheduler's own rules: a task is ready when its
    `dependencies` are done; ready tasks go by `priority` (the scheduler's function, so a change there changes
    this model), then plan order; at most `workers` run at once. Completions are handled one at a time, ties
    in submission order, as the Ray backend's wait(num_returns=1) does."""
    if workers < 1:
        raise ValueError(f"workers={workers}: need at least 1")
    items, needs = _graph(tasks_by_run)
    jobs = [SimpleNamespace(cfg=SimpleNamespace(prune=SimpleNamespace(levels=L))) for L in levels_by_run]
    order = {item: k for k, item in enumerate(items)}
    key = {i: (*priority(jobs[i[0]], i[1]), order[i]) for i in items}
    waiting_on = {i: len(needs[i]) for i in items}
    unlocks: dict = {i: [] for i in items}
    for i in items:
        for d in needs[i]:
            unlocks[d].append(i)
    ready = [(key[i], i) for i in items if not waiting_on[i]]
    heapq.heapify(ready)
    running: list = []  # (end, submission number, item)
    start, end, now, work = {}, {}, 0.0, 0.0
    while ready or running:
        while ready and len(running) < workers:
            _, item = heapq.heappop(ready)
            seconds = duration(*item) + overhead_s
            start[item], work = now, work + seconds
            heapq.heappush(running, (now + seconds, len(start), item))
        now, _, item = heapq.heappop(running)
        end[item] = now
        for nxt in unlocks[item]:
            waiting_on[nxt] -= 1
            if not waiting_on[nxt]:
                heapq.heappush(ready, (key[nxt], nxt))
    return Schedule(workers, now if items else 0.0, critical_path(tasks_by_run, duration, overhead_s), work,
                    start, end)


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


@dataclasses.dataclass
class DurationModel:
    """Seconds per task of one model+dataset, from finished tasks. An unmeasured (branch, level) gets the
    mean of that branch's measured pruned levels (1+): per-level time changes little with sparsity (masked
    weights still compute) and early stopping's epoch counts vary from level to level anyway. A branch never
    measured gets the mean of all measured pruned tasks; with only level 0 measured, level 0's mean."""
    samples: dict = dataclasses.field(default_factory=dict)  # (branch, level) -> [seconds]

    def add(self, branch: str, level: int, seconds: float) -> None:
        self.samples.setdefault((branch, level), []).append(float(seconds))

    def branch_mean(self, branch: str | None = None) -> float | None:
        """Mean seconds of the measured pruned tasks (levels 1+) of `branch`, or of every branch."""
        return _mean(s for (b, level), ss in self.samples.items() if level and branch in (None, b) for s in ss)

    def estimate(self, task: Task) -> tuple[float, str]:
        """(seconds, where they come from)."""
        for source, value in (("measured", _mean(self.samples.get((task.branch, task.level), []))),
                              ("branch mean", self.branch_mean(task.branch) if task.level else None),
                              ("mean of all pruned tasks", self.branch_mean()),
                              ("level 0 mean", _mean(self.samples.get(("ticket", 0), [])))):
            if value is not None:
                return value, source
        raise UserError("no finished task to measure: let a run finish at least one task first")

    def seconds(self, task: Task) -> float:
        return self.estimate(task)[0]

    def describe(self) -> str:
        level0 = _mean(self.samples.get(("ticket", 0), []))
        parts = [f"level 0 {level0:.0f} s" if level0 is not None else "level 0 not measured"]
        for branch in dict.fromkeys(b for b, lv in self.samples if lv):
            levels = sorted(lv for b, lv in self.samples if b == branch and lv)
            parts.append(f"{branch} {self.branch_mean(branch):.0f} s (mean of levels "
                         f"{','.join(map(str, levels))})")
        return "; ".join(parts)


def key_of(cfg: RunConfig) -> str:
    return f"{cfg.model.model}_{cfg.data.dataset}"


def duration_models(runs: list[RunDir]) -> dict[str, DurationModel]:
    """One model per model+dataset, pooling every finished task of the given runs."""
    models: dict[str, DurationModel] = {}
    for run in runs:
        model = models.setdefault(key_of(run.config()), DurationModel())
        for m in run.finished_metrics():
            model.add(m["branch"], int(m["level"]), m["seconds"])
    return models


@dataclasses.dataclass(frozen=True)
class GridRun:
    """One run of a projected grid: which duration model it takes, and its size."""
    model: str
    levels: int
    branches: tuple[str, ...]
    replicates: int


def project(grid: list[GridRun], models: dict[str, DurationModel], workers: list[int],
            overhead_s: float = 0.0, scale: float = 1.0) -> list[Schedule]:
    """Makespans of a grid of runs (one task graph, as lth_tf.sweep runs it) for each N in `workers`."""
    tasks_by_run = [plan(g.levels, list(g.branches), g.replicates) for g in grid]

    def duration(j: int, task: Task) -> float:
        return scale * models[grid[j].model].seconds(task)

    return [simulate(tasks_by_run, duration, n, [g.levels for g in grid], overhead_s) for n in workers]


def _table(schedules: list[Schedule]) -> list[str]:
    lines = ["      N  makespan (h)  utilisation %  critical path (h)"]
    for s in schedules:
        lines.append(f"  {s.workers:5d}  {s.makespan / 3600:12.3f}  {100 * s.utilisation:13.1f}  "
                     f"{s.critical_path / 3600:17.3f}" + ("  critical-path bound" if s.critical_path_bound else ""))
    s = schedules[0]
    lines.append(f"  total work {s.work / 3600:.3f} h; critical path {s.critical_path / 3600:.3f} h; "
                 f"work / critical path = {s.work / s.critical_path:.1f} workers: beyond that, the critical path "
                 f"takes over" if s.critical_path else "  no tasks")
    return lines


def define_flags() -> None:
    """Defined when the command runs and only if not yet defined (absl refuses a second definition)."""
    for define, name, default, help_text in (
        (flags.DEFINE_list, "run_dir", [], "Finished (or partly finished) run directories, comma-separated."),
        (flags.DEFINE_list, "workers", ["1", "2", "4", "16", "64", "256"], "Worker counts N to predict for."),
        (flags.DEFINE_float, "overhead_s", 0.0, "Fixed seconds added to every task (worker start, data load)."),
        (flags.DEFINE_float, "scale", 1.0, "Multiply every measured duration (another machine's speed)."),
        (flags.DEFINE_integer, "runs", 0, "Project a grid of this many runs per measured model+dataset "
                                          "(0 = no projection), e.g. 3 rewinding presets each."),
        (flags.DEFINE_integer, "levels", 20, "Projected runs: pruning levels after level 0."),
        (flags.DEFINE_integer, "replicates", 3, "Projected runs: replicates."),
        (flags.DEFINE_string, "branches", "ticket,reinit,random_mask", "Projected runs: branches."),
        (flags.DEFINE_float, "measured_s", 0.0, "Measured wall time of the given runs' sweep, in seconds."),
        (flags.DEFINE_integer, "measured_workers", 0, "Workers of that measured sweep."),
    ):
        if name not in FLAGS:
            define(name, default, help_text, module_name=COMMAND)


def main() -> int:
    workers = [int(n) for n in FLAGS.workers if n.isdigit()]
    if not workers or len(workers) < len(FLAGS.workers) or min(workers) < 1:
        raise UserError(f"--workers={','.join(FLAGS.workers)}: give positive integers, e.g. 1,2,4,16")
    for name, low in (("overhead_s", 0), ("levels", 0), ("replicates", 1), ("runs", 0), ("measured_s", 0),
                      ("measured_workers", 0)):
        if FLAGS[name].value < low:
            raise UserError(f"--{name}={FLAGS[name].value}: must be at least {low}")
    if FLAGS.scale <= 0:
        raise UserError(f"--scale={FLAGS.scale}: must be above 0")
    if bool(FLAGS.measured_s) != bool(FLAGS.measured_workers):
        raise UserError("--measured_s and --measured_workers go together: the wall time and its worker count")
    runs = [RunDir.open(p) for p in FLAGS.run_dir or [""]]
    models = duration_models(runs)
    print(f"duration model (seconds per task, from {len(runs)} run directory(ies), x{FLAGS.scale:g}, "
          f"+{FLAGS.overhead_s:g} s overhead per task):")
    for key, model in models.items():
        print(f"  {key}: {model.describe() if model.samples else 'nothing finished'}")
    print("  unmeasured levels: the mean of that branch's measured levels 1+ (a branch never measured: the "
          "mean of all measured pruned tasks)")
    cfgs = [run.config() for run in runs]
    tasks_by_run = [plan(c.prune.levels, c.branch_list(), c.experiment.replicates) for c in cfgs]
    measured = [{Task(int(m["replicate"]), int(m["level"]), m["branch"]): m["seconds"]
                 for m in run.finished_metrics()} for run in runs]

    def own(j: int, task: Task) -> float:  # a task's own measured seconds; the model's if it is not finished
        return FLAGS.scale * (measured[j][task] if task in measured[j] else models[key_of(cfgs[j])].seconds(task))

    total, done = sum(map(len, tasks_by_run)), sum(len(set(m) & set(t)) for m, t in zip(measured, tasks_by_run))
    ns = sorted(set(workers) | ({FLAGS.measured_workers} if FLAGS.measured_workers else set()))
    print(f"\nthe runs' own graph: {len(runs)} run(s), {total} tasks, {done} finished"
          + (f" ({total - done} estimated by the model)" if done < total else " (their measured seconds)"))
    schedules = {n: simulate(tasks_by_run, own, n, [c.prune.levels for c in cfgs], FLAGS.overhead_s) for n in ns}
    print("\n".join(_table([schedules[n] for n in ns])))
    if FLAGS.measured_workers:
        predicted = schedules[FLAGS.measured_workers].makespan
        print(f"  N={FLAGS.measured_workers}: predicted {predicted:.0f} s, measured {FLAGS.measured_s:.0f} s: error "
              f"{100 * (predicted - FLAGS.measured_s) / FLAGS.measured_s:+.1f}%")
    if FLAGS.runs:
        branches = tuple(RunConfig(experiment=ExperimentConfig(branches=FLAGS.branches)).branch_list())
        grid = [GridRun(key, FLAGS.levels, branches, FLAGS.replicates) for key in models for _ in range(FLAGS.runs)]
        tasks = len(grid) * FLAGS.replicates * (1 + FLAGS.levels * len(branches))
        print(f"\nprojection: {FLAGS.runs} run(s) x {len(models)} model+dataset(s), {FLAGS.replicates} "
              f"replicate(s), levels 0-{FLAGS.levels}, {','.join(branches)}: {tasks} tasks")
        print("\n".join(_table(project(grid, models, workers, FLAGS.overhead_s, FLAGS.scale))))
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
