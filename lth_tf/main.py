"""Command line: `python -m lth_tf.main --dataset=imdb --model=cnn [--late_rewind] ...` (absl flags).

Flags are generated from the dataclasses in `lth_tf.config`, so every hyperparameter has one name, one
default, one help text and one check. `--flagfile=flags/<preset>.cfg` loads one of the study's
configurations. Settings are checked before TensorFlow loads; mistakes print one line and exit 2.
"""
from __future__ import annotations

import os

from absl import flags

from lth_tf import cli
from lth_tf.config import THREADS_ENV

FLAGS = flags.FLAGS
SUMMARY = "Iterative magnitude pruning and lottery tickets for text classifiers (see README.md)."

cli.define_config_flags()
cli.define_executor_flags()
flags.DEFINE_string("output_dir", "runs", "Where run directories are created (one per distinct experiment).")
flags.DEFINE_boolean("export", False, "After the run, export the ticket chosen on validation accuracy as a "
                                      "SavedModel and TFLite models (see lth_tf.export).")
flags.DEFINE_string("export_dir", "saved_models", "Where --export writes.")
flags.DEFINE_boolean("progress", True, "Show a progress bar per epoch.")


def main() -> int:
    cfg, options = cli.config_from_flags(), cli.executor_from_flags()
    for note in cfg.validate() + options.validate():  # before TensorFlow loads, data is read or a directory made
        print(f"note: {note}", flush=True)
    os.environ[THREADS_ENV] = str(cfg.train.resolved_threads())  # read when TensorFlow starts
    from lth_tf.keras import tf
    from lth_tf.lottery.executor import execute

    tf.config.experimental.enable_op_determinism()  # the same seed gives the same masks and numbers
    (run,) = execute([cfg], FLAGS.output_dir, options, progress=FLAGS.progress)
    if FLAGS.export:
        from lth_tf.export import export_run

        export_run(run.path, FLAGS.export_dir)
    return 0


def run() -> None:
    cli.run_command("lth_tf.main", SUMMARY, main)


if __name__ == "__main__":
    run()
