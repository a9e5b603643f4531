"""Installs lth_tf: lottery tickets for text classifiers in TensorFlow 2.21 / Keras 2 (tf_keras)."""
from setuptools import find_packages, setup

# Versions tested together on Python 3.11 (see BUILD.md). `tensorflow` (not `tensorflow-cpu`) because
# tf-keras depends on it: mixing the two installs TensorFlow twice.
INSTALL_REQUIRES = [
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-model-optimization==0.8.1",
    "tensorflow-datasets==4.9.10",
    "importlib_resources>=6",  # undeclared need of tensorflow-datasets 4.9.10 on Python 3.11
    "setuptools",  # tfmot 0.8.1 imports distutils, gone from the stdlib in Python 3.12
    "numpy>=1.26,<3",
    "matplotlib>=3.8,<4",
    "absl-py>=1.4,<3",
    "tensorboard==2.21.0",  # TensorFlow 2.21 no longer installs it; tf.summary needs it
    "dm-tree>=0.1.8",
    "ray==2.60.0",  # --executor=ray and lth_tf.sweep (tested with a local cluster)
    "scipy>=1.11,<2",  # intervals and tests in the reports
    "ai-edge-litert==2.3.0",  # the TFLite interpreter that verifies every export (tf.lite.Interpreter's successor)
]

EXTRAS = {
    "test": ["pytest>=8", "pytest-xdist==3.8.0"],  # pytest.ini runs the suite in 2 processes
    "torch": ["torch==2.13.0"],  # benchmarks against the study's framework only
}

setup(
    name="lth_tf",
    version="0.2.0",
    description="Find, study and ship lottery tickets in text classifiers (TensorFlow 2.21, tf_keras, tfmot).",
    packages=find_packages(include=["lth_tf", "lth_tf.*"]),
    package_data={"lth_tf.data": ["samples/*.csv.gz"]},
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["lth_tf=lth_tf.main:run"]},
)
