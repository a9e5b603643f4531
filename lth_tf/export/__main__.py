"""Command line: `python -m lth_tf.export --run_dir=runs/cnn_imdb_<hash> [--level=N] ...` (absl flags; see
lth_tf.export and docs/export.md). Help, --version and the error policy are lth_tf.cli's."""
from __future__ import annotations

from absl import flags

from lth_tf import cli
from lth_tf.config import BRANCHES
from lth_tf.export import (DEFAULT_LATENCY_RUNS, DEFAULT_MAX_EXAMPLES, DEFAULT_PQAT_EPOCHS, DEFAULT_PQAT_LEARNING_RATE,
                           DEFAULT_TFLITE_LENGTH, export_run)

FLAGS = flags.FLAGS
COMMAND = "lth_tf.export"  # what --help shows and lists the flags of (they are registered under this name)
SUMMARY = "Export a lottery ticket of a finished run as a SavedModel and TFLite models (see docs/export.md)."


def define_flags() -> None:
    """Defined when the command runs, not on import, and only names not yet defined: lth_tf.main defines
    --export_dir too, and absl refuses a second definition in one process."""
    for define, name, default, help_text in (
        (flags.DEFINE_string, "run_dir", "", "Run directory written by lth_tf.main (config.json, vocab.txt, "
                                             "r*/level_*)."),
        (flags.DEFINE_integer, "level", None, "Level to export; default: the pruned level with the best validation "
                                              "accuracy (level 0 if none is finished)."),
        (flags.DEFINE_integer, "replicate", 0, "Replicate to export."),
        (flags.DEFINE_string, "branch", "ticket", "Branch to export: " + ", ".join(BRANCHES) + "."),
        (flags.DEFINE_string, "export_dir", "saved_models", "Where the export directory is created."),
        (flags.DEFINE_boolean, "tflite", True, "Also convert to TFLite (float and int8) and verify."),
        (flags.DEFINE_boolean, "no_tflite", False, "Skip TFLite (the same as --notflite)."),
        (flags.DEFINE_boolean, "dense", True, "Also export the dense network (level 0) for comparison."),
        (flags.DEFINE_integer, "tflite_length", 0, f"TFLite input length L; 0 = the run's --max_len, else "
                                                   f"{DEFAULT_TFLITE_LENGTH}."),
        (flags.DEFINE_integer, "max_examples", DEFAULT_MAX_EXAMPLES, "Test texts used to verify the TFLite models."),
        (flags.DEFINE_integer, "latency_runs", DEFAULT_LATENCY_RUNS, "Invokes timed per TFLite model (median)."),
        (flags.DEFINE_integer, "num_threads", 1, "Interpreter threads."),
        (flags.DEFINE_boolean, "pqat", False, "CNN: pruning-preserving quantization-aware training (a short "
                                              "fine-tune on the training split), then a full-integer int8 TFLite "
                                              "model (*_pqat_int8.tflite). BiLSTM: the report says why not."),
        (flags.DEFINE_integer, "pqat_epochs", DEFAULT_PQAT_EPOCHS, "Epochs of the PQAT fine-tune."),
        (flags.DEFINE_float, "pqat_learning_rate", DEFAULT_PQAT_LEARNING_RATE, "Adam learning rate of the PQAT "
                                                                             "fine-tune."),
    ):
        if name not in FLAGS:
            define(name, default, help_text, module_name=COMMAND)


def main() -> int:
    from absl import logging

    from lth_tf.keras import tf

    logging.set_verbosity(logging.WARNING)  # the converter's INFO lines drown the report
    tf.get_logger().setLevel("WARNING")
    export_run(FLAGS.run_dir, FLAGS.export_dir, replicate=FLAGS.replicate, level=FLAGS.level,
               branch=FLAGS.branch, tflite=FLAGS.tflite and not FLAGS.no_tflite, tflite_length=FLAGS.tflite_length,
               max_examples=FLAGS.max_examples, latency_runs=FLAGS.latency_runs, num_threads=FLAGS.num_threads,
               dense=FLAGS.dense, pqat=FLAGS.pqat, pqat_epochs=FLAGS.pqat_epochs,
               pqat_learning_rate=FLAGS.pqat_learning_rate, log=lambda m: print(m, flush=True))
    return 0


def run() -> None:
    cli.run_command(COMMAND, SUMMARY, main, define_flags)


if __name__ == "__main__":
    run()
