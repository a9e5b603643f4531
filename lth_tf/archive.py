"""A run's record: the small part of a run that is kept (in version control, or copied between machines)
so that the run can be reported and resumed anywhere, without its weights.

    python -m lth_tf.archive --save=RUNS/cnn_imdb_<hash> --records=evidence
    python -m lth_tf.archive --restore=evidence/cnn_imdb_<hash> --output_dir=RUNS

A record holds the run's settings and data statistics, its vocabulary (gzipped), every finished task's
metrics, the instruments' reports (JSON and Markdown), and the masks of its trajectories (the tickets themselves; a control's mask is the ticket's or
follows from its seed). It holds no weights: a 20-level IMDb CNN run is ~1.5 GB with them, a few MB
without. Restored, a run resumes as after any loss of files: a task whose input weights are gone is
recomputed from its stored mask and the seeds (lth_tf.lottery.scheduler), bit-identical, so each
trajectory pays one task to pick up where it stopped.
"""
from __future__ import annotations

import gzip
import os

from absl import flags

from lth_tf import atomic, cli
from lth_tf.errors import UserError
from lth_tf.lottery.branches import BRANCHES
from lth_tf.rundir import CONFIG, DATA, MASK, METRICS, VOCAB, RunDir

FLAGS = flags.FLAGS
COMMAND = "lth_tf.archive"
SUMMARY = "Save a run's record (settings, metrics, ticket masks; no weights) or restore a run from one."
VOCAB_GZ = VOCAB + ".gz"
INSTRUMENT_REPORTS = ("instability_level_", "mask_analysis", "early_bird", "init_magnitude")


def record_files(run: RunDir) -> list[str]:
    """The run-relative paths a record keeps."""
    files = [CONFIG, DATA]
    for task in run.finished():
        files.append(os.path.join(task.key, METRICS))
        mask = os.path.join(task.key, MASK)
        if BRANCHES[task.branch].is_trajectory and os.path.exists(run.file(mask)):
            files.append(mask)
    for folder in sorted(os.listdir(run.path)):  # the instruments' reports (numbers and text; plots are redrawn)
        if os.path.isdir(run.file(folder)) and folder.startswith(INSTRUMENT_REPORTS):
            files += [os.path.join(folder, n) for n in sorted(os.listdir(run.file(folder)))
                      if n.endswith((".json", ".md"))]
    return files


def save(run: RunDir, records_dir: str) -> tuple[str, int]:
    """Write (or bring up to date) `run`'s record in `records_dir`; returns its path and its size in bytes.
    Files already in the record and unchanged are left alone, so a record in git only grows by new tasks;
    an instrument's report the run no longer has is removed from it."""
    if next(run.finished(), None) is None:
        raise UserError(f"--run_dir={run.path}: no finished task yet (no {METRICS}): nothing to save")
    record = os.path.join(records_dir, run.name)
    kept = record_files(run)
    for rel in _stale_reports(record, kept):
        os.remove(os.path.join(record, rel))
    for rel in kept:
        source, target = run.file(rel), os.path.join(record, rel)
        if not (os.path.exists(target) and _same_bytes(source, target)):
            with open(source, "rb") as f:
                atomic.write_bytes(target, f.read())
    vocab = run.file(VOCAB)
    if os.path.exists(vocab):
        with open(vocab, "rb") as f:
            text = f.read()
        target = os.path.join(record, VOCAB_GZ)
        if not (os.path.exists(target) and _gunzip(target) == text):
            atomic.write_bytes(target, gzip.compress(text, mtime=0))
    return record, sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(record) for n in names)


def _stale_reports(record: str, kept: list[str]) -> list[str]:
    """The instruments' reports in `record` that its run no longer has (an instrument rerun may write other
    files). Task files are never removed: a task being recomputed has no metrics for a while, yet is done."""
    if not os.path.isdir(record):
        return []
    stale = []
    for folder in sorted(os.listdir(record)):
        if os.path.isdir(os.path.join(record, folder)) and folder.startswith(INSTRUMENT_REPORTS):
            stale += [rel for n in sorted(os.listdir(os.path.join(record, folder)))
                      if (rel := os.path.join(folder, n)) not in kept]
    return stale


def restore(record: str, output_dir: str) -> RunDir:
    """Recreate the run directory of `record` in `output_dir`, adding only files the run does not have: a
    run that went on after the record was saved keeps its newer files."""
    if not os.path.isfile(os.path.join(record, CONFIG)):
        raise UserError(f"--restore={record}: no {CONFIG}; a record is a folder written by "
                        f"`python -m lth_tf.archive --save=RUN_DIR --records=FOLDER`")
    run = RunDir(os.path.join(output_dir, os.path.basename(os.path.normpath(record))))
    run.create("--output_dir")
    for folder, _, names in os.walk(record):
        for name in names:
            source = os.path.join(folder, name)
            rel = os.path.relpath(source, record)
            if rel == VOCAB_GZ:
                if not os.path.exists(run.file(VOCAB)):
                    atomic.write_bytes(run.file(VOCAB), _gunzip(source))
            elif not os.path.exists(run.file(rel)):
                os.makedirs(os.path.dirname(run.file(rel)), exist_ok=True)
                with open(source, "rb") as f:
                    atomic.write_bytes(run.file(rel), f.read())
    run.config()  # a damaged record is named now, not when the run resumes
    return run


def _same_bytes(a: str, b: str) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def _gunzip(path: str) -> bytes:
    with gzip.open(path, "rb") as f:
        return f.read()


def define_flags() -> None:
    flags.DEFINE_string("save", None, "A run directory to record.", module_name=COMMAND)
    flags.DEFINE_string("records", "evidence", "With --save: the folder of records (one sub-folder per run).",
                        module_name=COMMAND)
    flags.DEFINE_string("restore", None, "A record folder (written by --save) to recreate a run from.",
                        module_name=COMMAND)
    flags.DEFINE_string("output_dir", None, "With --restore: where to recreate the run (lth_tf.main's "
                        "--output_dir).", module_name=COMMAND)


def main() -> int:
    if bool(FLAGS.save) == bool(FLAGS.restore):
        raise UserError("give one of --save=RUN_DIR (write its record) or --restore=RECORD --output_dir=DIR")
    if FLAGS.save:
        path, size = save(RunDir.open(FLAGS.save, "--save"), FLAGS.records)
        print(f"record of {FLAGS.save} written to {path} ({size / 1e6:.2f} MB)")
        return 0
    if not FLAGS.output_dir:
        raise UserError("--restore needs --output_dir: where to recreate the run")
    run = restore(FLAGS.restore, FLAGS.output_dir)
    done = sum(1 for _ in run.finished())
    print(f"restored {run.path}: {done} finished task(s); rerun lth_tf.main with the run's settings and "
          f"--output_dir={FLAGS.output_dir} to resume it")
    return 0


if __name__ == "__main__":
    cli.run_command(COMMAND, SUMMARY, main, define_flags)
