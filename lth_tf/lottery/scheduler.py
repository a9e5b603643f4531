"""Runs the tasks of one or more runs as one graph, on a backend: this process (`LocalBackend`) or a Ray
cluster (`lth_tf.lottery.ray_backend.RayBackend`).

A task is submitted once its inputs exist (lth_tf.lottery.tasks.dependencies), longest remaining chain
first: a trajectory's task at level L unlocks L+1 .. the last level, so the trajectories (the critical
path) go before the controls and a cluster stays busy; among equal chains (the controls, and a trajectory's
last level) the lowest level goes first (`priority`). A task whose outputs exist is never submitted.
Whoever runs a task claims it first (lth_tf.rundir.RunDir.claim), so several drivers, executors or
workers may share a run; a task held by another process is waited for, not run twice.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Protocol

from lth_tf.atomic import DamagedFile
from lth_tf.config import RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery import spawn_tasks
from lth_tf.lottery.branches import BRANCHES
from lth_tf.lottery.tasks import dependencies
from lth_tf.rundir import RunDir, Task

POLL_S = 2.0  # how often a driver waiting for another process's task looks again
MAX_ATTEMPTS = 4  # a task whose worker died this many times stops the sweep


@dataclasses.dataclass
class Job:
    """One run of a sweep: its settings, run directory and tasks (in plan order)."""
    cfg: RunConfig
    run: RunDir
    tasks: list[Task]


@dataclasses.dataclass(frozen=True)
class Item:
    job: int
    task: Task


@dataclasses.dataclass
class Outcome:
    """What became of a submitted task: `done` (its metrics), `busy` (another process holds it),
    `missing` (an input of it is gone: `producer` must be recomputed), `lost` (its worker died)."""
    item: Item
    status: str
    metrics: dict | None = None
    producer: Task | None = None
    message: str = ""


class Backend(Protocol):
    def capacity(self) -> int: ...

    def submit(self, item: Item, job: Job) -> None: ...

    def wait(self, timeout: float) -> list[Outcome]: ...


def chain_length(job: Job, task: Task) -> int:
    """How many levels this task still unlocks (1 for a control, or a task that is no branch's)."""
    if task.branch in BRANCHES and BRANCHES[task.branch].is_trajectory:
        return job.cfg.prune.levels - task.level + 1
    return 1


def priority(job: Job, task: Task) -> tuple[int, int]:
    """The order ready tasks start in (plan order breaks what ties remain): the longest chain first, since the
    critical path bounds the makespan; then the lowest level, so that a run stopped part-way has every replicate
    of its lowest levels (what a level's interval needs) rather than every level of its first replicates. An
    instability analysis's tasks keep plan order (one replicate's analysis finished before the next's)."""
    return -chain_length(job, task), 0 if spawn_tasks.is_spawned(task) else task.level


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def describe(m: dict) -> str:
    """A finished task in one line: an IMP task's accuracies, or the `summary` other tasks write."""
    if "summary" in m:
        return f"{m['summary']} | {m['seconds']:.0f}s"
    return (f"sparsity {100 * m['sparsity']:.2f}% | valid acc {m['valid_accuracy']:.4f} | test acc "
            f"{m['test_accuracy']:.4f} | {m['epochs_trained']} epochs {m['seconds']:.0f}s")


class Scheduler:
    def __init__(self, jobs: list[Job], backend: Backend, log: Callable[[str], None] = print):
        self.jobs, self.backend, self.log = jobs, backend, log

    def _done(self, item: Item) -> bool:
        return self.jobs[item.job].run.is_done(item.task)

    def _finished_intact(self, item: Item) -> bool:
        """Done, with readable metrics. A damaged metrics.json means not done: the task is recomputed."""
        run = self.jobs[item.job].run
        if not run.is_done(item.task):
            return False
        try:
            run.read_metrics(item.task)
            return True
        except DamagedFile as e:
            self.log(f"{e}: recomputing {item.task.key}")
            run.invalidate(item.task)
            return False

    def _ready(self, item: Item) -> bool:
        run = self.jobs[item.job].run
        return all(run.is_done(d) for d in dependencies(item.task)) and not run.is_claimed(item.task)

    def run(self) -> None:
        items = [Item(j, t) for j, job in enumerate(self.jobs) for t in job.tasks]
        order = {item: i for i, item in enumerate(items)}
        pending = {item for item in items if not self._finished_intact(item)}
        total, in_flight, attempts = len(items), set(), {}
        started, finished_here, task_seconds = time.perf_counter(), 0, 0.0
        self.log(f"{total} tasks in {len(self.jobs)} run(s), {total - len(pending)} already done")
        waiting = False
        while pending:
            ready = sorted((i for i in pending - in_flight if self._ready(i)),
                           key=lambda i: (*priority(self.jobs[i.job], i.task), order[i]))
            for item in ready[:max(0, self.backend.capacity() - len(in_flight))]:
                self.backend.submit(item, self.jobs[item.job])
                in_flight.add(item)
            if not in_flight:  # what remains waits for tasks that other processes hold
                if not waiting:
                    self.log("waiting for tasks that another process is training ...")
                waiting = True
                time.sleep(POLL_S)
                pending = {i for i in pending if not self._done(i)}
                continue
            waiting = False
            for outcome in self.backend.wait(POLL_S):
                item = outcome.item
                in_flight.discard(item)
                if outcome.status == "done":
                    pending.discard(item)
                    finished_here += 1
                    m = outcome.metrics
                    task_seconds += m["seconds"]
                    eta = task_seconds / finished_here * len(pending) / max(1, min(self.backend.capacity(),
                                                                                    len(pending) or 1))
                    self.log(f"[{self._name(item)}] {describe(m)} | done {total - len(pending)}/{total}, running "
                             f"{len(in_flight)} | ETA {_duration(eta)}")
                elif outcome.status == "missing":
                    job = self.jobs[item.job]
                    self.log(f"[{self._name(item)}] {outcome.message}: recomputing {outcome.producer.key}")
                    job.run.invalidate(outcome.producer)
                    producer = Item(item.job, outcome.producer)
                    order.setdefault(producer, -1)
                    pending.add(producer)
                elif outcome.status == "lost":
                    attempts[item] = attempts.get(item, 0) + 1
                    self.log(f"[{self._name(item)}] worker lost ({outcome.message}); resubmitting "
                             f"(attempt {attempts[item] + 1})")
                    if attempts[item] >= MAX_ATTEMPTS:
                        raise UserError(f"{self._name(item)}: its worker died {attempts[item]} times "
                                        f"({outcome.message}); see the Ray logs, then rerun to resume")
                # "busy": another process holds it; it is looked at again on the next round
        self.log(f"all {total} tasks done in {_duration(time.perf_counter() - started)}")

    def _name(self, item: Item) -> str:
        return item.task.key if len(self.jobs) == 1 else f"{self.jobs[item.job].run.name}/{item.task.key}"


def run_claimed(experiment, task: Task) -> tuple[str, dict | None, Task | None, str]:
    """Run one task in this process if nobody else holds it: (status, metrics, producer, message)."""
    from lth_tf.lottery.imp import MissingInput

    run = experiment.run_dir
    with run.claim(task) as mine:
        if not mine:
            return "busy", None, None, ""
        if run.is_done(task):
            return "done", run.read_metrics(task), None, ""
        experiment.log(f"[{task.key}] training ...")
        try:
            return "done", experiment.run(task), None, ""
        except MissingInput as e:
            return "missing", None, e.producer, f"needs {e}"


class LocalBackend:
    """Runs each task in this process, one at a time."""

    def __init__(self, experiments: list, log: Callable[[str], None] = print):
        self.experiments, self.log, self.queue = experiments, log, []

    def capacity(self) -> int:
        return 1

    def submit(self, item: Item, job: Job) -> None:
        self.queue.append(item)

    def wait(self, timeout: float) -> list[Outcome]:
        from lth_tf.errors import Interrupted
        from lth_tf.training import Interrupted as TrainingInterrupted

        outcomes = []
        while self.queue:
            item = self.queue.pop(0)
            experiment = self.experiments[item.job]
            try:
                status, metrics, producer, message = run_claimed(experiment, item.task)
            except KeyboardInterrupt as e:
                epoch = f", epoch {e.epoch}" if isinstance(e, TrainingInterrupted) else ""
                resume = "from that epoch" if experiment.resumable else "from the start of that task"
                raise Interrupted(f"during {item.task.key}{epoch}: rerun the same command to resume "
                                  f"({resume})") from None
            outcomes.append(Outcome(item, status, metrics, producer, message))
        return outcomes
