"""lth_tf: iterative magnitude pruning and lottery tickets for text classifiers.

Keras 2 (`tf_keras`) is the only Keras this package uses. TensorFlow 2.21 resolves `tf.keras` to
Keras 3 unless TF_USE_LEGACY_KERAS=1 is set before `tf.keras` is first touched, and tfmot only
accepts Keras 2 models, so the variable is set here, before anything imports TensorFlow.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.2.0"
