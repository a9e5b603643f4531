"""The Keras used everywhere in lth_tf: Keras 2 (`tf_keras`), never Keras 3."""
import lth_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

if not tf.keras.__name__.startswith("tf_keras"):  # pragma: no cover - depends on import order of the caller
    raise ImportError(
        "tf.keras resolved to Keras 3: import lth_tf before anything touches tf.keras, "
        "or set TF_USE_LEGACY_KERAS=1 in the environment")

__all__ = ["keras", "tf"]
