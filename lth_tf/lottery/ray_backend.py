"""The Ray backend of the scheduler: each task is a Ray task on some worker of a cluster.

Workers get the code through Ray's runtime environment (the lth_tf package is shipped as a py_module, so
nodes need TensorFlow and the other dependencies but not lth_tf itself) and the settings with each task.
Runs live in a directory every worker can reach (a shared filesystem, docs/scaling.md). A worker process
keeps the prepared data of the runs it has served; its TensorFlow thread pools are the run's --threads
(LTH_TF_THREADS in the task's runtime environment), so a task gives the same numbers on any worker as in
a local run. Ray retries a task whose worker or node died; the task resumes from its last checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

from lth_tf.config import THREADS_ENV, ExecutorConfig, RunConfig
from lth_tf.errors import UserError
from lth_tf.lottery.scheduler import Item, Job, Outcome
from lth_tf.rundir import Task

RAY_RETRIES = 3  # Ray's own retries of a task whose worker died, before the scheduler resubmits it
_EXPERIMENTS: dict[str, object] = {}  # per worker process: run path -> Experiment (data loaded once)


def _worker_experiment(cfg_dict: dict, run_path: str):
    from lth_tf.lottery.executor import reopen
    from lth_tf.rundir import RunDir

    if run_path not in _EXPERIMENTS:
        _EXPERIMENTS[run_path] = reopen(RunConfig.from_dict(cfg_dict), RunDir(run_path), log=lambda m: None,
                                        progress=False)
    return _EXPERIMENTS[run_path]


def run_remote(cfg_dict: dict, run_path: str, task: tuple) -> tuple:
    """The body of a Ray task (a plain function, so tests can call it directly)."""
    from lth_tf.keras import tf
    from lth_tf.lottery.scheduler import run_claimed

    tf.config.experimental.enable_op_determinism()
    status, metrics, producer, message = run_claimed(_worker_experiment(cfg_dict, run_path), Task(*task))
    return status, metrics, None if producer is None else dataclasses.astuple(producer), message


def package_dir() -> str:
    import lth_tf

    return os.path.dirname(os.path.abspath(lth_tf.__file__))


def init_ray(address: str, log: Callable[[str], None] = print) -> None:
    """Join the cluster at `address`, or start one on this machine (quietly, without a dashboard)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a cluster started here, for this user only
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    runtime_env = {"py_modules": [package_dir()], "env_vars": {"TF_USE_LEGACY_KERAS": "1",
                                                                "TF_CPP_MIN_LOG_LEVEL": "2"}}
    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=True,
                 logging_level="ERROR", runtime_env=runtime_env)
    except ConnectionError as e:
        raise UserError(f"--ray_address={address}: cannot reach a Ray cluster there ({e})") from None
    resources = ray.cluster_resources()
    log(f"ray: {len(ray.nodes())} node(s), {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")


class RayBackend:
    def __init__(self, options: ExecutorConfig, jobs: list[Job], log: Callable[[str], None] = print):
        import ray

        init_ray(options.ray_address, log)
        self.ray, self.options, self.jobs, self.log = ray, options, jobs, log
        self.refs: dict = {}  # ObjectRef -> Item
        self._remote = ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False)(run_remote)

    def task_cpus(self, job: Job) -> float:
        return self.options.task_cpus or job.cfg.train.resolved_threads()

    def capacity(self) -> int:
        """Tasks in flight at once: what the cluster's CPUs hold (at least 1). More would only queue in Ray
        and lose the scheduler's critical-path order."""
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        return max(1, int(cpus // min(self.task_cpus(job) for job in self.jobs)))

    def submit(self, item: Item, job: Job) -> None:
        env = {"env_vars": {THREADS_ENV: str(job.cfg.train.resolved_threads()), "TF_USE_LEGACY_KERAS": "1",
                            "TF_CPP_MIN_LOG_LEVEL": "2"}}
        ref = self._remote.options(num_cpus=self.task_cpus(job), num_gpus=self.options.task_gpus,
                                   runtime_env=env).remote(job.cfg.to_dict(), os.path.abspath(job.run.path),
                                                           dataclasses.astuple(item.task))
        self.refs[ref] = item

    def wait(self, timeout: float) -> list[Outcome]:
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        outcomes = []
        for ref in ready:
            item = self.refs.pop(ref)
            try:
                status, metrics, producer, message = self.ray.get(ref)
            except (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError,
                    self.ray.exceptions.RayActorError, self.ray.exceptions.TaskUnschedulableError,
                    self.ray.exceptions.LocalRayletDiedError, self.ray.exceptions.ObjectLostError) as e:
                outcomes.append(Outcome(item, "lost", message=type(e).__name__))
                continue
            except self.ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(getattr(e, "cause", None), Exception) else e
                if isinstance(cause, UserError):
                    raise cause from None
                raise
            outcomes.append(Outcome(item, status, metrics, None if producer is None else Task(*producer), message))
        return outcomes
