"""The makespan model (lth_tf.lottery.makespan) on hand-made graphs whose answers are worked out by hand.
No TensorFlow: the model only reads task graphs and metrics.json files."""
import os
import subprocess
import sys

import pytest

from lth_tf.config import ExperimentConfig, PruneConfig, RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery import makespan
from lth_tf.lottery.branches import BRANCHES
from lth_tf.lottery.tasks import plan
from lth_tf.rundir import RunDir, Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def uneven(j, task):
    """Durations that differ per task, so sums and paths are not accidental."""
    extra = {"ticket": 0.25, "reinit": 1.0, "random_mask": 2.0}[task.branch]
    return 1.0 + 0.5 * task.level + extra + j + task.replicate


def test_one_worker_is_the_sum_of_durations():
    tasks = [plan(3, ["ticket", "reinit", "random_mask"], 2), plan(2, ["ticket", "reinit"], 1)]
    s = makespan.simulate(tasks, uneven, 1, [3, 2])
    total = sum(uneven(j, t) for j, ts in enumerate(tasks) for t in ts)
    assert s.makespan == pytest.approx(total) and s.work == pytest.approx(total)
    assert s.utilisation == pytest.approx(1.0)
    s = makespan.simulate(tasks, uneven, 1, [3, 2], overhead_s=2.0)
    assert s.makespan == pytest.approx(total + 2.0 * (len(tasks[0]) + len(tasks[1])))


def test_unlimited_workers_give_the_critical_path():
    tasks = [plan(4, ["ticket", "reinit", "random_mask"], 3)]
    s = makespan.simulate(tasks, uneven, len(tasks[0]), [4])
    assert s.makespan == pytest.approx(s.critical_path)
    assert s.critical_path_bound
    # by hand: the longest chain of replicate 2 is its dense level then ticket 1..3, then the slowest child of
    # ticket 3 at level 4 (random_mask: 1 + 2 + 2 + 2 = 7)
    by_hand = sum(1.0 + 0.5 * L + 0.25 + 2 for L in range(4)) + (1.0 + 2.0 + 2.0 + 2)
    assert s.critical_path == pytest.approx(by_hand)
    unit = makespan.simulate([plan(20, ["ticket", "reinit", "random_mask"], 3)], lambda j, t: 1.0, 10_000, [20])
    assert unit.makespan == unit.critical_path == 21.0  # 21 sequential levels


def test_two_levels_two_branches_on_two_workers_by_hand():
    # dense 10, ticket 5 / 4, reinit 7 / 3.  t=0 dense; t=10 ticket 1 (chain 2) and reinit 1; t=15 ticket 1
    # done: ticket 2 (plan order before reinit 2); t=17 reinit 1 done: reinit 2; ends 19 and 20.
    seconds = {(0, "ticket"): 10, (1, "ticket"): 5, (1, "reinit"): 7, (2, "ticket"): 4, (2, "reinit"): 3}
    s = makespan.simulate([plan(2, ["ticket", "reinit"], 1)], lambda j, t: seconds[t.level, t.branch], 2, [2])
    assert s.makespan == 20
    assert s.critical_path == 19  # dense + ticket 1 + ticket 2
    assert s.utilisation == pytest.approx(29 / 40)
    assert {t.key: (s.start[0, t], s.end[0, t]) for _, t in s.start} == {
        "r0/level_00/ticket": (0, 10), "r0/level_01/ticket": (10, 15), "r0/level_01/reinit": (10, 17),
        "r0/level_02/ticket": (15, 19), "r0/level_02/reinit": (17, 20)}
    assert not s.critical_path_bound  # 20 > 1.05 * 19


def test_trajectory_first_beats_control_first(monkeypatch):
    # every task 1 s, 2 workers. Trajectory first: t=1 ticket 1 + reinit 1; t=2 random_mask 1 + ticket 2;
    # t=3 reinit 2 + random_mask 2: 4 s. Control first: t=1 reinit 1 + random_mask 1; t=2 ticket 1 alone;
    # t=3 ticket 2 + reinit 2; t=4 random_mask 2: 5 s.
    tasks = [plan(2, ["ticket", "reinit", "random_mask"], 1)]
    assert makespan.simulate(tasks, lambda j, t: 1.0, 2, [2]).makespan == 4
    monkeypatch.setattr(makespan, "priority",
                        lambda job, task: (1 if BRANCHES[task.branch].is_trajectory else 0, task.level))
    assert makespan.simulate(tasks, lambda j, t: 1.0, 2, [2]).makespan == 5


def test_equal_chains_go_lowest_level_first():
    # one worker, 2 replicates of 2 levels. Once both tickets of level 1 are done every ready task has a chain of
    # 1: both level-1 controls go before any level-2 task, so a run stopped there has level 1 complete in both
    # replicates (plan order alone would finish replicate 0 first).
    tasks = [plan(2, ["ticket", "reinit"], 2)]
    s = makespan.simulate(tasks, lambda j, t: 1.0, 1, [2])
    started = [t.key for _, t in sorted(s.start, key=lambda i: s.start[i])]
    assert started == ["r0/level_00/ticket", "r1/level_00/ticket", "r0/level_01/ticket", "r1/level_01/ticket",
                       "r0/level_01/reinit", "r1/level_01/reinit",
                       "r0/level_02/ticket", "r0/level_02/reinit", "r1/level_02/ticket", "r1/level_02/reinit"]


def test_projection_of_a_grid():
    model = makespan.DurationModel()
    model.add("ticket", 0, 30)
    model.add("ticket", 1, 10)
    model.add("reinit", 1, 20)
    grid = [makespan.GridRun("cnn_imdb", 20, ("ticket", "reinit", "random_mask"), 3)] * 2
    one, many = makespan.project(grid, {"cnn_imdb": model}, [1, 100_000], scale=2.0)
    # per replicate: level 0 30 s, 20 ticket levels 10 s, 20 reinit 20 s, 20 random_mask (never measured:
    # the mean of all pruned tasks, 15 s); 2 runs x 3 replicates; every duration doubled
    assert one.makespan == pytest.approx(2 * 6 * (30 + 20 * (10 + 20 + 15)))
    # the critical path: level 0, ticket 1..19, then reinit 20 (the slowest child of ticket 19)
    assert many.makespan == pytest.approx(many.critical_path) == pytest.approx(2 * (30 + 19 * 10 + 20))


def fake_run(path, levels, branches, replicates, seconds):
    run = RunDir(str(path))
    run.create()
    run.write_config(RunConfig(prune=PruneConfig(levels=levels),
                               experiment=ExperimentConfig(branches=branches, replicates=replicates)), "f" * 16)
    for (r, level, branch), s in seconds.items():
        run.write_metrics(Task(r, level, branch), {"replicate": r, "level": level, "branch": branch, "seconds": s,
                                                  "epochs_trained": 3, "valid_accuracy": 0.5})
    return run


def test_duration_model_from_a_run_directory(tmp_path):
    run = fake_run(tmp_path / "run", 3, "ticket,reinit", 2, {
        (0, 0, "ticket"): 100, (1, 0, "ticket"): 120, (0, 1, "ticket"): 50, (1, 1, "ticket"): 70,
        (0, 2, "ticket"): 30, (0, 1, "reinit"): 40})
    (model,) = makespan.duration_models([run]).values()
    assert list(makespan.duration_models([run])) == ["cnn_imdb"]
    assert model.estimate(Task(0, 0, "ticket")) == (110, "measured")
    assert model.estimate(Task(1, 1, "ticket")) == (60, "measured")
    assert model.estimate(Task(0, 3, "ticket")) == (50, "branch mean")  # (50 + 70 + 30) / 3
    assert model.estimate(Task(0, 3, "reinit")) == (40, "branch mean")
    assert model.estimate(Task(0, 1, "random_mask")) == (47.5, "mean of all pruned tasks")
    only_dense = makespan.DurationModel()
    only_dense.add("ticket", 0, 90)
    assert only_dense.estimate(Task(0, 4, "reinit")) == (90, "level 0 mean")
    with pytest.raises(UserError):
        makespan.DurationModel().seconds(Task(0, 0, "ticket"))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "lth_tf.lottery.makespan", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_command_line(tmp_path):
    # the run's own graph, all measured: dense 10 s, then ticket 5 s and reinit 7 s side by side: 17 s on 2
    run = fake_run(tmp_path / "run", 1, "ticket,reinit", 1,
                   {(0, 0, "ticket"): 10, (0, 1, "ticket"): 5, (0, 1, "reinit"): 7})
    out = cli(f"--run_dir={run.path}", "--workers=1,4", "--measured_s=20", "--measured_workers=2",
              "--runs=2", "--levels=3", "--replicates=2")
    assert out.returncode == 0, out.stderr
    assert "N=2: predicted 17 s, measured 20 s: error -15.0%" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert rows[:3] == [["1", "0.006", "100.0", "0.005"], ["2", "0.005", "64.7", "0.005", "critical-path", "bound"],
                        ["4", "0.005", "32.4", "0.005", "critical-path", "bound"]]
    assert "projection: 2 run(s) x 1 model+dataset(s), 2 replicate(s), levels 0-3" in out.stdout
    assert "ticket,reinit,random_mask: 40 tasks" in out.stdout
    for bad, says in ((["--workers=0"], "--workers=0"), (["--measured_s=5"], "go together"),
                      ([], "--run_dir is required")):
        out = cli(*([f"--run_dir={run.path}"] if bad != [] else []), *bad)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
