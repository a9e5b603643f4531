"""The task graph of an experiment: which tasks there are, what each needs, and their seeds.

A trajectory's level L needs its level L-1 (level 1: the dense level); a control at level L needs the
level L-1 of the trajectory whose mask it borrows (the ticket's, or early_bird's for early_bird_ticket);
every task that starts from the rewind point needs the dense level, which records it. The instability
analysis's tasks have a graph of their own (lth_tf.lottery.spawn_tasks). Seeds are functions of the task
alone, never of what ran before it, so any executor running tasks in any order gives the same numbers.
"""
from __future__ import annotations

import hashlib

from lth_tf.lottery import spawn_tasks
from lth_tf.lottery.branches import BRANCHES
from lth_tf.rundir import Task

DENSE = "ticket"  # level 0 is trained once per replicate, stored as the ticket's, and shared by every branch


def dense(replicate: int) -> Task:
    return Task(replicate, 0, DENSE)


def plan(levels: int, branches: list[str], replicates: int) -> list[Task]:
    """Every task of the experiment, each after the tasks it depends on."""
    tasks = []
    for r in range(replicates):
        tasks.append(dense(r))
        for level in range(1, levels + 1):
            tasks += [Task(r, level, b) for b in branches]
    return tasks


def mask_parent(task: Task) -> Task:
    """The task whose trained weights and mask give `task`'s mask (or the trajectory's mask it borrows)."""
    source = BRANCHES[task.branch].mask
    owner = task.branch if source == "own" else source if source in BRANCHES else "ticket"
    return dense(task.replicate) if task.level == 1 else Task(task.replicate, task.level - 1, owner)


def dependencies(task: Task) -> list[Task]:
    if spawn_tasks.is_spawned(task):
        return spawn_tasks.dependencies(task)
    if task.level == 0:
        return []
    needs = [mask_parent(task)]
    if BRANCHES[task.branch].start == "rewind" and needs[0] != dense(task.replicate):
        needs.append(dense(task.replicate))
    return needs


def derive_seed(*parts) -> int:
    """A seed for one purpose of one task, independent of what else ran before it."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16) % 2**20
