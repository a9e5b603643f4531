"""An existing run's experiment, for commands that add to it or study it (recompute, instability,
init_magnitude): its saved settings (data possibly moved), its thread count, deterministic ops, and its data
checked to be the data it was made on.

This module imports no TensorFlow at load: the thread count must be set before TensorFlow starts.
"""
from __future__ import annotations

import os

from lth_tf.config import THREADS_ENV
from lth_tf.rundir import RunDir


def open_experiment(run: RunDir, data_dir: str = "", progress: bool = False):
    """The `lth_tf.lottery.imp.Experiment` of `run`, in this process, which must not have started TensorFlow."""
    cfg = run.settings(data_dir)
    os.environ[THREADS_ENV] = str(cfg.train.threads)  # read when TensorFlow starts
    from lth_tf.keras import tf
    from lth_tf.lottery.executor import reopen, with_absolute_paths

    tf.config.experimental.enable_op_determinism()
    return reopen(with_absolute_paths(cfg), run, progress=progress)
