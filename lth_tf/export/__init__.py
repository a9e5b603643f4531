"""Export a lottery ticket of a finished run: a SavedModel that takes raw text, and TFLite models.

    python -m lth_tf.export --run_dir=runs/cnn_imdb_<hash> [--level=N] [--replicate=0] [--branch=ticket]
                            [--export_dir=saved_models] [--no_tflite] [--tflite_length=256]
                            [--max_examples=2000] [--latency_runs=100]

`export_run` rebuilds the network of the run (its settings, vocabulary and class names), loads the trained
weights and mask of one task (read through lth_tf.rundir), checks that every weight its mask prunes is exactly
zero, and writes, into one directory that appears only when complete (built in a temporary directory, then
renamed; lth_tf.atomic.atomic_dir):

- `saved_model/`: the ticket with its pruned weights baked in as zeros, as a plain `tf.Module`: no pruning
  wrappers, no mask variables, its variables named by the registry's stable names. Signatures:
  `serving_default(texts: tf.string [None]) -> {probabilities: float32 [None, C], class_ids: int32 [None]}`
  (tokeniser `lth_tf.data.tokenize_tf` and the vocabulary inside the graph; unknown tokens -> 1, padding 0,
  the run's --max_len applied) and `token_ids(token_ids: int32 [None, None]) -> the same`.
- `dense/saved_model/`: the same for the dense network (level 0), for comparison (not when exporting level 0).
- `{ticket,dense}_{float,int8}.tflite`: float and dynamic-range int8 (`Optimize.DEFAULT`) TFLite models.
  Input: int32 token ids [1, L] (L = --tflite_length, else the run's --max_len, else 256), right-padded with
  0; the model reads only the ids up to the last non-zero one, so padding never changes a prediction (the
  fixed batch of 1 is what lets the LSTM become the fused UNIDIRECTIONAL_SEQUENCE_LSTM op). The fused LSTM
  keeps its state in TFLite variable tensors: call `reset_all_variables()` before every invoke.
- `vocab.txt` (line i = id i, for TFLite users), `metadata.json`, `export_report.json`/`.md`: sizes raw and
  gzip -9, agreement with the Keras model and accuracy on (up to --max_examples) test examples, latency.

See docs/export.md.

The package, one module per job:
    ticket.py      the run and one finished task read, the network rebuilt, the pruned zeros checked
    savedmodel.py  the SavedModel (ServingModule), saved and reloaded
    tflite.py      the TFLite entry point, conversion, interpreter (LiteRunner) and op check
    verify.py      the texts checked on, agreement and accuracy against Keras, latency
    sizes.py       raw and gzip -9 sizes, parameter counts, the embedding's share
    report.py      metadata.json, export_report.json/.md and the table
    __main__.py    the command line (its flags)
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable

from lth_tf import atomic
from lth_tf.config import BRANCHES
from lth_tf.errors import UserError
from lth_tf.export.report import fmt_pct, format_table, metadata, write_metadata, write_report
from lth_tf.export.savedmodel import ServingModule, check_saved_model, save_saved_model
from lth_tf.export.sizes import (GZIP_NOTE, dir_sizes, embedding_bytes, file_sizes, gzip_size, parameter_counts,
                                 ratios_ticket_vs_dense, saved_model_sizes)
from lth_tf.export.ticket import (LoadedRun, LoadedTask, check_pruned_zero, choose_level, dense_metrics,
                                  load_run, load_task, padding_mask_off, rebuild)
from lth_tf.export.tflite import (RESOLVER_DEFAULT, RESOLVER_FALLBACK, LiteModule, LiteRunner, check_ops,
                                  convert_tflite)
from lth_tf.export.verify import (Examples, keras_accuracy, keras_probabilities, latency, verification_examples,
                                  verify_lite)
from lth_tf.nets.models import EMBEDDING_LAYER

DEFAULT_TFLITE_LENGTH = 256
DEFAULT_MAX_EXAMPLES = 2000
DEFAULT_LATENCY_RUNS = 100

__all__ = [
    "DEFAULT_LATENCY_RUNS", "DEFAULT_MAX_EXAMPLES", "DEFAULT_TFLITE_LENGTH", "RESOLVER_DEFAULT", "RESOLVER_FALLBACK",
    "Examples", "LiteModule", "LiteRunner", "LoadedRun", "LoadedTask", "ServingModule", "check_ops",
    "check_pruned_zero", "check_saved_model", "choose_level", "convert_tflite", "dir_sizes", "embedding_bytes",
    "export_name", "export_run", "file_sizes", "format_table", "gzip_size", "keras_probabilities", "latency",
    "load_run", "load_task", "padding_mask_off", "parameter_counts", "rebuild", "save_saved_model",
    "verification_examples", "verify_lite",
]


def export_name(run: LoadedRun, replicate: int, level: int, branch: str) -> str:
    return f"{run.name}_r{replicate}_L{level:02d}_{branch}"


def export_run(run_dir: str, export_dir: str = "saved_models", replicate: int = 0, level: int | None = None,
               branch: str = "ticket", tflite: bool = True, data=None, log: Callable[[str], None] = print, *,
               tflite_length: int = 0, max_examples: int = DEFAULT_MAX_EXAMPLES,
               latency_runs: int = DEFAULT_LATENCY_RUNS, num_threads: int = 1, dense: bool = True) -> dict:
    """Export one ticket of a run (default: replicate 0's ticket chosen on validation accuracy) and the dense
    network for comparison. Returns the report (also written as export_report.json); `report["path"]` is
    the export directory. `data`: a PreparedData of the run, to skip preparing the test split again."""
    started = time.perf_counter()
    if branch not in BRANCHES:
        raise UserError(f"--branch={branch!r}: choose from {', '.join(BRANCHES)}")
    if replicate < 0:
        raise UserError(f"--replicate={replicate}: must be 0 or more")
    if tflite_length < 0:
        raise UserError(f"--tflite_length={tflite_length}: must be 0 (the run's max_len, else "
                        f"{DEFAULT_TFLITE_LENGTH}) or positive")
    if max_examples < 0 or latency_runs < 0 or num_threads < 1:
        raise UserError("--max_examples and --latency_runs must be 0 or more, --num_threads at least 1")
    run = load_run(run_dir)
    if level is None:
        level = choose_level(run.dir, replicate, branch)
        log(f"export: level {level} chosen on validation accuracy (replicate {replicate}, branch {branch})")
    elif level < 0:
        raise UserError(f"--level={level}: must be 0 or more")
    ticket = load_task(run, replicate, level, branch)
    dense_task = load_task(run, replicate, 0, branch) if dense and ticket.level > 0 else None
    length = tflite_length or run.cfg.data.max_len or DEFAULT_TFLITE_LENGTH

    final = os.path.join(export_dir, export_name(run, replicate, ticket.level, ticket.branch))
    if os.path.isdir(export_dir):
        atomic.remove_stale_temporaries(export_dir, recursive=False)  # what a killed export left behind
    with atomic.atomic_dir(final) as out:
        report = _export_into(out, run, ticket, dense_task, dense_metrics(run.dir, replicate), length, tflite,
                              data, log, max_examples, latency_runs, num_threads)
        report["path"] = os.path.abspath(final)
        report["seconds"] = time.perf_counter() - started
        table = write_report(out, report)
    log(f"export: wrote {final} ({report['seconds']:.0f}s)")
    log(table)
    return report


def _export_into(out: str, run: LoadedRun, ticket: LoadedTask, dense_task: LoadedTask | None, dense_metrics: dict,
                 length: int, tflite: bool, data, log, max_examples: int, latency_runs: int, num_threads: int) -> dict:
    models = {"ticket": ticket} if dense_task is None else {"dense": dense_task, "ticket": ticket}
    log(f"export: {run.name} replicate {ticket.replicate} level {ticket.level} ({ticket.branch}), "
        f"sparsity {100 * ticket.metrics.get('sparsity', 0.0):.2f}%")
    sizes, checks = {}, {}
    ex = verification_examples(run, data, max_examples, length, log)
    for role, task in models.items():
        sm_path = os.path.join(out, "saved_model") if role == "ticket" else os.path.join(out, "dense", "saved_model")
        save_saved_model(task.model, run, sm_path)
        sizes[f"{role}/saved_model"] = saved_model_sizes(sm_path)
        checks[f"{role}/saved_model"] = check_saved_model(sm_path, task.model, run, ex)
        log(f"export: {role} SavedModel written; reload check {json.dumps(checks[f'{role}/saved_model'])}")

    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write("\n".join(run.vocab) + "\n")

    lite = {}
    if tflite:
        for role, task in models.items():
            lite.update(_tflite_files(out, role, task, run, ex, length, sizes, log, latency_runs, num_threads))

    meta = metadata(run, ticket, dense_metrics, length, tflite)
    write_metadata(out, meta)
    return {"metadata": meta, "sizes": sizes, "ratios_ticket_vs_dense": ratios_ticket_vs_dense(sizes),
            "tflite": lite, "saved_model_checks": checks, "verification": ex.source,
            "tflite_length": length, "num_threads": num_threads, "gzip": GZIP_NOTE}


def _tflite_files(out: str, role: str, task: LoadedTask, run: LoadedRun, ex: Examples, length: int, sizes: dict,
                  log, latency_runs: int, num_threads: int) -> dict:
    """`{role}_float.tflite` and `{role}_int8.tflite`, each run and checked against the Keras network; their
    sizes go into `sizes`, their report entries are returned."""
    kind = run.cfg.model.model
    emb = task.weights.get(f"{EMBEDDING_LAYER}/embeddings")
    reference = keras_probabilities(task.model, ex, run.num_classes)
    module = LiteModule(task.model, run.num_classes, length)
    lite = {}
    for variant in ("float", "int8"):
        key = f"{role}/{variant}"
        t = time.perf_counter()
        with padding_mask_off(task.model):
            content = convert_tflite(module, int8=variant == "int8")
        path = os.path.join(out, f"{role}_{variant}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        convert_s = time.perf_counter() - t
        runner = LiteRunner(content, num_threads)
        info = {"file": os.path.basename(path), "convert_seconds": convert_s, "runtime": runner.package,
                "resolver": runner.resolver, "xnnpack_failure": runner.fallback_reason,
                "keras_accuracy_same_input": keras_accuracy(reference, ex), **check_ops(kind, runner.ops())}
        if kind == "lstm" and info.get("fused_lstm") is False:
            log(f"export: warning: {key} has no fused LSTM op (ops: {info['ops']})")
        info.update(verify_lite(runner, ex, reference, latency_runs))
        sizes[key] = file_sizes(path)
        if emb is not None:
            info["embedding_bytes"] = embedding_bytes(runner, tuple(emb.shape), sizes[key])
        lite[key] = info
        log(f"export: {key}.tflite {sizes[key]['raw_bytes']:,} B (gzip {sizes[key]['gzip_bytes']:,}), "
            f"agreement {fmt_pct(info['agreement'])}, accuracy {fmt_pct(info['accuracy'])}, {runner.resolver}")
    return lite
