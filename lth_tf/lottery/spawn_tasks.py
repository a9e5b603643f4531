"""The task graph of an instability analysis (lth_tf.instruments.instability): which tasks, what each needs.

For replicate R, level L and a rewind iteration n (a step of level 0's training):

    rewind point  r<R>/level_00/instability/rewind_<n>it/      level 0's weights at step n (dense training
                                                               replayed from θ0 with level 0's seeds)
    copy          r<R>/level_<LL>/instability/<n>it/copy_<c>/  level L's ticket mask trained from that point,
                                                               with copy c's data order and dropout
    path          r<R>/level_<LL>/instability/<n>it/path_<a>_<b>_<k>pt/
                                                               copies a and b's weights interpolated at k
                                                               evenly spaced points, each evaluated

Copies `a` and `b` have their own seeds; `a2` is a second copy with `a`'s seeds (--identical_copies: its
path to `a` must be flat). A copy needs the rewind point and level L's finished ticket (its mask.npz only);
a path needs its two copies. These tasks live under their level's folder and are no branch of the
experiment: reports, records and the mask analysis never see them (lth_tf.rundir.RunDir.finished).
"""
from __future__ import annotations

import dataclasses
import re

from lth_tf.rundir import INSTABILITY, Task

TICKET = "ticket"  # whose mask the copies train (lth_tf.lottery.branches)
DISTINCT, IDENTICAL = ("a", "b"), ("a", "a2")
_NAME = re.compile(rf"{INSTABILITY}/(?:rewind_(?P<rewind>\d+)it|(?P<it>\d+)it/"
                   rf"(?:copy_(?P<copy>[a-z]\d?)|path_(?P<a>[a-z]\d?)_(?P<b>[a-z]\d?)_(?P<points>\d+)pt))")


@dataclasses.dataclass(frozen=True)
class Spawned:
    """What a task of the analysis is: kind 'rewind', 'copy' or 'path', and its parameters."""
    kind: str
    replicate: int
    level: int
    iteration: int
    copy: str = ""
    copies: tuple[str, str] = ("", "")
    points: int = 0

    @property
    def seed_copy(self) -> str:
        """The copy whose seeds this copy trains with (`a2` repeats `a`)."""
        return self.copy[0]


def rewind_point(replicate: int, iteration: int) -> Task:
    return Task(replicate, 0, f"{INSTABILITY}/rewind_{iteration}it")


def copy(replicate: int, level: int, iteration: int, name: str) -> Task:
    return Task(replicate, level, f"{INSTABILITY}/{iteration}it/copy_{name}")


def path(replicate: int, level: int, iteration: int, copies: tuple[str, str], points: int) -> Task:
    a, b = copies
    return Task(replicate, level, f"{INSTABILITY}/{iteration}it/path_{a}_{b}_{points}pt")


def is_spawned(task: Task) -> bool:
    return task.branch.startswith(INSTABILITY + "/")


def parse(task: Task) -> Spawned:
    m = _NAME.fullmatch(task.branch)
    if not m:
        raise ValueError(f"{task.key}: not a task of the instability analysis")
    r, level = task.replicate, task.level
    if m["rewind"] is not None:
        return Spawned("rewind", r, level, int(m["rewind"]))
    if m["copy"] is not None:
        return Spawned("copy", r, level, int(m["it"]), copy=m["copy"])
    return Spawned("path", r, level, int(m["it"]), copies=(m["a"], m["b"]), points=int(m["points"]))


def copies(identical: bool) -> tuple[str, str]:
    return IDENTICAL if identical else DISTINCT


def plan(replicates: list[int], level: int, iterations: list[int], points: int, identical: bool) -> list[Task]:
    """Every task of the analysis, each after the tasks it depends on."""
    pair = copies(identical)
    tasks = []
    for r in replicates:
        tasks += [rewind_point(r, n) for n in iterations]
        for n in iterations:
            tasks += [copy(r, level, n, c) for c in pair] + [path(r, level, n, pair, points)]
    return tasks


def dependencies(task: Task) -> list[Task]:
    s = parse(task)
    if s.kind == "rewind":
        return []
    if s.kind == "copy":
        return [Task(s.replicate, s.level, TICKET), rewind_point(s.replicate, s.iteration)]
    return [copy(s.replicate, s.level, s.iteration, c) for c in s.copies]
