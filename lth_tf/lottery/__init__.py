"""The lottery experiment: the branch table, the task graph, the IMP task (`imp.py`), and executors.

    from lth_tf.lottery.executor import execute    # run or resume an experiment in this process
"""
from lth_tf.lottery.branches import BRANCHES, Branch
from lth_tf.lottery.tasks import Task, dependencies, plan

__all__ = ["BRANCHES", "Branch", "Task", "dependencies", "plan"]
