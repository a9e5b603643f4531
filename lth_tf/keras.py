"""The Keras used everywhere in lth_tf: Keras 2 (`tf_keras`), never Keras 3.

Importing TensorFlow here also keeps its C++ start-up notes off the terminal: they are printed before
TensorFlow's log level applies (TF_CPP_MIN_LOG_LEVEL does not silence them), so stderr is captured while
TensorFlow loads and initialises its devices, and anything but the known notes is passed on.
Thread pools can only be sized before that start, so they are read here from LTH_TF_THREADS (set by
`--threads` and by the Ray executor from a task's CPU share).
"""
import contextlib
import os
import re
import sys
import tempfile

import lth_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from lth_tf.config import THREADS_ENV

_STARTUP_NOTES = re.compile(r"WARNING: All log messages before absl::InitializeLog|"
                            r"^[IWE]\d{4} .*(port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc|cuda_platform\.cc|"
                            r"cuda_executor\.cc|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc)|"
                            r"^To enable the following instructions|computation_placer\.cc")


@contextlib.contextmanager
def _startup_notes_hidden():
    if os.environ.get("LTH_TF_VERBOSE_STARTUP"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _STARTUP_NOTES.search(line):
                    print(line, file=sys.stderr)


with _startup_notes_hidden():
    import tensorflow as tf
    import tf_keras as keras

    _threads = int(os.environ.get(THREADS_ENV, "0") or 0)
    if _threads > 0:  # must precede the runtime's start (next line)
        tf.config.threading.set_intra_op_parallelism_threads(_threads)
        tf.config.threading.set_inter_op_parallelism_threads(_threads)
    tf.config.list_logical_devices()  # initialises the devices (the CUDA probe's notes) inside the capture

if not tf.keras.__name__.startswith("tf_keras"):  # pragma: no cover - depends on import order of the caller
    raise ImportError(
        "tf.keras resolved to Keras 3: import lth_tf before anything touches tf.keras, "
        "or set TF_USE_LEGACY_KERAS=1 in the environment")

__all__ = ["keras", "tf"]
