"""Export a lottery ticket of a finished run: a SavedModel that takes raw text, TFLite models, and the mobile
contract (labels, vocabulary, tokeniser rules and reference cases).

    python -m lth_tf.export --run_dir=runs/cnn_imdb_<hash> [--level=N] [--replicate=0] [--branch=ticket]
                            [--export_dir=saved_models] [--no_tflite] [--tflite_length=256]
                            [--max_examples=2000] [--latency_runs=100]
                            [--pqat [--pqat_epochs=1] [--pqat_learning_rate=1e-4]]

`export_run` rebuilds the network of the run (its settings, vocabulary and class names), loads the trained
weights and mask of one task (read through lth_tf.rundir), checks that every weight its mask prunes is exactly
zero, and writes, into one directory that appears only when complete (built in a temporary directory, then
renamed; lth_tf.atomic.atomic_dir):

- `saved_model/`: the ticket with its pruned weights baked in as zeros, as a plain `tf.Module`: no pruning
  wrappers, no mask variables, its variables named by the registry's stable names. Signatures:
  `serving_default(texts: tf.string [None]) -> {probabilities: float32 [None, C], class_ids: int32 [None],
  class_name: string [None], class_names: string [None, C], token_ids: int32 [None, T]}` (tokeniser
  `lth_tf.data.tokenize_tf` and the vocabulary inside the graph; unknown tokens -> 1, padding 0, the run's
  --max_len applied) and `token_ids(token_ids: int32 [None, None]) -> the same but token_ids`. Each text's
  answer is the network's on that text alone, whatever else is in the batch (lth_tf.export.serving).
- `dense/saved_model/`: the same for the dense network (level 0), for comparison (not when exporting level 0).
- `{ticket,dense}_{float,int8}.tflite`: float and dynamic-range int8 (`Optimize.DEFAULT`) TFLite models.
  Input: int32 token ids [1, L] (L = --tflite_length, else the run's --max_len, else 256), right-padded with
  0; the model reads only the ids up to the last non-zero one, so padding never changes a prediction (the
  fixed batch of 1 is what lets the LSTM become the fused UNIDIRECTIONAL_SEQUENCE_LSTM op). The fused LSTM
  keeps its state in TFLite variable tensors: call `reset_all_variables()` before every invoke.
- with --pqat (the CNN): `{ticket,dense}_pqat_int8.tflite`, full-integer int8 after pruning-preserving
  quantization-aware training (lth_tf.export.pqat); for the BiLSTM the report says why not and what instead.
- the mobile contract (lth_tf.export.contract): `labels.txt`, `vocab.txt`, `tokenizer.json`,
  `tokenizer_cases.json`; and `metadata.json`, `export_report.json`/`.md`: sizes raw and gzip -9, agreement
  with the Keras model and accuracy on (up to --max_examples) test examples, pruned weights stored as zero,
  latency.

See docs/export.md.

The package, one module per job:
    ticket.py      the run and one finished task read, the network rebuilt, the pruned zeros checked
    serving.py     a batch of ids -> each text's logits as if alone (the CNN's max-pool masked)
    savedmodel.py  the SavedModel (ServingModule), saved and reloaded
    tflite.py      the TFLite entry point, conversions, interpreter (LiteRunner), op and tensor checks
    pqat.py        pruning-preserving quantization-aware training and the full-integer model
    contract.py    labels.txt, vocab.txt, tokenizer.json, tokenizer_cases.json
    verify.py      the texts checked on, agreement and accuracy against Keras, latency
    sizes.py       raw and gzip -9 sizes, parameter counts, the embedding's share
    report.py      metadata.json, export_report.json/.md and the table
    __main__.py    the command line (its flags)
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from lth_tf import atomic
from lth_tf.config import BRANCHES
from lth_tf.errors import UserError
from lth_tf.export import contract
from lth_tf.export.report import format_table, metadata, write_metadata, write_report
from lth_tf.export.savedmodel import ServingModule, check_saved_model, describe_check, save_saved_model
from lth_tf.export.serving import per_text_logits_fn, text_lengths
from lth_tf.export.sizes import (GZIP_NOTE, dir_sizes, embedding_bytes, file_sizes, gzip_size, parameter_counts,
                                 ratios_ticket_vs_dense, saved_model_sizes)
from lth_tf.export.ticket import (LoadedRun, LoadedTask, check_pruned_zero, choose_level, dense_metrics,
                                  load_run, load_task, padding_mask_off, rebuild)
from lth_tf.export.tflite import (RESOLVER_DEFAULT, RESOLVER_FALLBACK, LiteModule, LiteRunner, check_full_integer,
                                  check_ops, convert_full_int8, convert_tflite, interpreter_note, pruned_zeros)
from lth_tf.export.verify import (Examples, describe_lite, keras_accuracy, keras_probabilities, latency, run_data,
                                  verification_examples, verify_lite)
from lth_tf.nets.models import EMBEDDING_LAYER

DEFAULT_TFLITE_LENGTH = 256
DEFAULT_MAX_EXAMPLES = 2000
DEFAULT_LATENCY_RUNS = 100
DEFAULT_PQAT_EPOCHS = 1
DEFAULT_PQAT_LEARNING_RATE = 1e-4

__all__ = [
    "DEFAULT_LATENCY_RUNS", "DEFAULT_MAX_EXAMPLES", "DEFAULT_PQAT_EPOCHS", "DEFAULT_PQAT_LEARNING_RATE",
    "DEFAULT_TFLITE_LENGTH", "RESOLVER_DEFAULT", "RESOLVER_FALLBACK",
    "Examples", "LiteModule", "LiteRunner", "LoadedRun", "LoadedTask", "ServingModule", "check_full_integer",
    "check_ops", "check_pruned_zero", "check_saved_model", "choose_level", "contract", "convert_full_int8",
    "convert_tflite", "dir_sizes", "embedding_bytes", "export_name", "export_run", "file_sizes", "format_table",
    "gzip_size", "interpreter_note", "keras_probabilities", "latency", "load_run", "load_task", "padding_mask_off",
    "parameter_counts", "per_text_logits_fn", "pruned_zeros", "rebuild", "save_saved_model", "text_lengths",
    "verification_examples", "verify_lite",
]


def export_name(run: LoadedRun, replicate: int, level: int, branch: str) -> str:
    return f"{run.name}_r{replicate}_L{level:02d}_{branch}"


def export_run(run_dir: str, export_dir: str = "saved_models", replicate: int = 0, level: int | None = None,
               branch: str = "ticket", tflite: bool = True, data=None, log: Callable[[str], None] = print, *,
               tflite_length: int = 0, max_examples: int = DEFAULT_MAX_EXAMPLES,
               latency_runs: int = DEFAULT_LATENCY_RUNS, num_threads: int = 1, dense: bool = True,
               pqat: bool = False, pqat_epochs: int = DEFAULT_PQAT_EPOCHS,
               pqat_learning_rate: float = DEFAULT_PQAT_LEARNING_RATE) -> dict:
    """Export one ticket of a run (default: replicate 0's ticket chosen on validation accuracy) and the dense
    network for comparison. Returns the report (also written as export_report.json); `report["path"]` is
    the export directory. `data`: a PreparedData of the run, to skip preparing the test split again.
    `pqat`: also pruning-preserving QAT and a full-integer int8 TFLite model (the CNN; lth_tf.export.pqat)."""
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
    if pqat and (pqat_epochs < 1 or not pqat_learning_rate > 0):
        raise UserError(f"--pqat_epochs={pqat_epochs}, --pqat_learning_rate={pqat_learning_rate}: need at least "
                        f"1 epoch and a positive learning rate")
    if pqat and not tflite:
        raise UserError("--pqat makes a TFLite model: it cannot go with --no_tflite")
    run = load_run(run_dir)
    if level is None:
        level = choose_level(run.dir, replicate, branch)
        log(f"export: level {level} chosen on validation accuracy (replicate {replicate}, branch {branch})")
    elif level < 0:
        raise UserError(f"--level={level}: must be 0 or more")
    ticket = load_task(run, replicate, level, branch, log)
    dense_task = load_task(run, replicate, 0, branch, log) if dense and ticket.level > 0 else None
    length = tflite_length or run.cfg.data.max_len or DEFAULT_TFLITE_LENGTH
    options = {"tflite": tflite, "length": length, "max_examples": max_examples, "latency_runs": latency_runs,
               "num_threads": num_threads, "pqat": pqat, "pqat_epochs": pqat_epochs,
               "pqat_learning_rate": pqat_learning_rate}

    final = os.path.join(export_dir, export_name(run, replicate, ticket.level, ticket.branch))
    if os.path.isdir(export_dir):
        atomic.remove_stale_temporaries(export_dir, recursive=False)  # what a killed export left behind
    with atomic.atomic_dir(final) as out:
        report = _export_into(out, run, ticket, dense_task, dense_metrics(run.dir, replicate), data, log, options)
        report["path"] = os.path.abspath(final)
        report["seconds"] = time.perf_counter() - started
        table = write_report(out, report)
    log(f"export: wrote {final} ({report['seconds']:.0f}s)")
    log(table)
    return report


def _export_into(out: str, run: LoadedRun, ticket: LoadedTask, dense_task: LoadedTask | None, dense_metrics: dict,
                 data, log, options: dict) -> dict:
    models = {"ticket": ticket} if dense_task is None else {"dense": dense_task, "ticket": ticket}
    length, tflite = options["length"], options["tflite"]
    log(f"export: {run.name} replicate {ticket.replicate} level {ticket.level} ({ticket.branch}), "
        f"sparsity {100 * ticket.metrics.get('sparsity', 0.0):.2f}%")
    reason = None
    if options["max_examples"] > 0 or options["pqat"]:
        data, reason = run_data(run, data, log)
    sizes, checks = {}, {}
    ex = verification_examples(run, data, options["max_examples"], length, log, reason)
    for role, task in models.items():
        sm_path = os.path.join(out, "saved_model") if role == "ticket" else os.path.join(out, "dense", "saved_model")
        save_saved_model(task.model, run, sm_path)
        sizes[f"{role}/saved_model"] = saved_model_sizes(sm_path)
        checks[f"{role}/saved_model"] = check_saved_model(sm_path, task.model, run, ex)
        log(describe_check(role, checks[f"{role}/saved_model"]))

    files = contract.write_contract(out, run.vocab, run.class_names, run.cfg.data.max_len,
                                    length if tflite else None)
    log(f"export: mobile contract written: {', '.join(contract.FILES)} ({files['reference_cases']} reference "
        f"tokenizer cases)")

    lite, pqat_report = {}, None
    if tflite:
        log(f"export: {interpreter_note()}")
        for role, task in models.items():
            lite.update(_tflite_files(out, role, task, run, ex, length, sizes, log, options))
        if options["pqat"]:
            pqat_report = _pqat(out, models, run, ex, data, reason, length, sizes, lite, log, options)

    meta = metadata(run, ticket, dense_metrics, length, tflite, contract=files,
                    pqat=bool(pqat_report and pqat_report.get("files")))
    write_metadata(out, meta)
    return {"metadata": meta, "sizes": sizes, "ratios_ticket_vs_dense": ratios_ticket_vs_dense(sizes),
            "tflite": lite, "saved_model_checks": checks, "verification": ex.source, "pqat": pqat_report,
            "tflite_length": length, "num_threads": options["num_threads"], "gzip": GZIP_NOTE}


def _keras_weights(task: LoadedTask) -> dict:
    """{stable name: (weights, mask)} in the Keras layout (mask all True where the task has none)."""
    return {name: (w, task.masks.get(name, np.ones(w.shape, bool))) for name, w in task.weights.items()}


def _tflite_files(out: str, role: str, task: LoadedTask, run: LoadedRun, ex: Examples, length: int, sizes: dict,
                  log, options: dict) -> dict:
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
        runner = LiteRunner(content, options["num_threads"])
        info = {"file": os.path.basename(path), "convert_seconds": convert_s, "runtime": runner.package,
                "resolver": runner.resolver, "xnnpack_failure": runner.fallback_reason,
                "quantization": "none (float32)" if variant == "float" else
                "dynamic range: int8 weights of 1,024+ elements, float activations",
                "keras_accuracy_same_input": keras_accuracy(reference, ex), **check_ops(kind, runner.ops())}
        if kind == "lstm" and info.get("fused_lstm") is False:
            log(f"export: warning: {key} has no fused LSTM op (ops: {info['ops']})")
        info.update(verify_lite(runner, ex, reference, options["latency_runs"]))
        info["pruned_zeros"] = pruned_zeros(runner, _keras_weights(task))
        sizes[key] = file_sizes(path)
        if emb is not None:
            info["embedding_bytes"] = embedding_bytes(runner, tuple(emb.shape), sizes[key])
        lite[key] = info
        log(describe_lite(key, info, sizes[key], "test texts" if ex.labels is not None else "random id sequences"))
    return lite


def _pqat(out: str, models: dict, run: LoadedRun, ex: Examples, data, reason: str | None, length: int,
          sizes: dict, lite: dict, log, options: dict) -> dict:
    """--pqat: per network, the full-integer int8 model after pruning-preserving QAT (the CNN), or why not
    (the BiLSTM). Report entries go into `lite` and `sizes`; returns the report's `pqat` section."""
    from lth_tf.export import pqat

    if run.cfg.model.model != "cnn":
        status = pqat.lstm_qat_status(models["ticket"].model)
        log(f"export: --pqat: no quantization-aware training for the BiLSTM: {status['reason']} "
            f"(quantize_apply: {status['quantize_apply']}). Best supported path: {status['instead']}.")
        return {"supported": False, **status}
    if data is None:
        log(f"export: warning: --pqat skipped: it fine-tunes on the training split, and {reason}")
        return {"supported": True, "skipped": reason}
    from lth_tf.data import make_dataset

    cfg = run.cfg
    result = {"supported": True, "epochs": options["pqat_epochs"], "learning_rate": options["pqat_learning_rate"],
              "batch_size": cfg.train.batch_size, "training_texts": len(data.train),
              "representative_texts": min(pqat.REPRESENTATIVE_TEXTS, len(data.train)), "files": [],
              "scheme": "tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme"}
    for role, task in models.items():
        key = f"{role}/pqat_int8"
        t = time.perf_counter()
        twin = pqat.build_twin(run, task, check_ids=ex.ids[:8])
        log(f"export: {role} PQAT network built (Conv1D as Conv2D (1 x w), [0, z] + softmax): before "
            f"quantization it gives the Keras network's probabilities (max difference {twin.twin_max_abs_diff:.1e})")

        def batches(epoch):
            return make_dataset(data.train, cfg.train.batch_size, shuffle_seed=epoch, bucket=cfg.train.bucket,
                                max_len=cfg.data.max_len)

        history = pqat.fine_tune(twin, batches, options["pqat_epochs"], options["pqat_learning_rate"], log,
                                 label=f"{role} ")
        zero = pqat.pruned_still_zero(twin)
        module = LiteModule(twin.model, run.num_classes, length, outputs_probabilities=True,
                            variables=twin.model.variables)
        content = convert_full_int8(module, pqat.representative_dataset(data.train, length))
        path = os.path.join(out, f"{role}_pqat_int8.tflite")
        with open(path, "wb") as f:
            f.write(content)
        seconds = time.perf_counter() - t
        runner = LiteRunner(content, options["num_threads"])
        reference = keras_probabilities(task.model, ex, run.num_classes)
        qat_probs = pqat.twin_probabilities(twin, ex.ids, ex.lengths)
        info = {"file": os.path.basename(path), "convert_seconds": seconds, "runtime": runner.package,
                "resolver": runner.resolver, "xnnpack_failure": runner.fallback_reason,
                "quantization": "full integer: int8 weights and activations, int8 output, int32 token-id input "
                                "(after pruning-preserving QAT)",
                "keras_accuracy_same_input": keras_accuracy(reference, ex),
                **check_ops(run.cfg.model.model, runner.ops()), **check_full_integer(runner)}
        info.update(verify_lite(runner, ex, reference, options["latency_runs"]))
        probs = np.stack([runner.predict(row) for row in ex.ids]) if len(ex.ids) else qat_probs
        info["pqat"] = {"history": history, "twin_vs_keras_max_abs_diff": twin.twin_max_abs_diff,
                        "pruned_still_zero": zero,
                        "qat_keras_accuracy": keras_accuracy(qat_probs, ex) if len(qat_probs) else None,
                        "qat_keras_vs_float_agreement": float(np.mean(qat_probs.argmax(-1) == reference.argmax(-1)))
                        if len(qat_probs) else None,
                        "tflite_vs_qat_keras_agreement": float(np.mean(probs.argmax(-1) == qat_probs.argmax(-1)))
                        if len(qat_probs) else None}
        info["pruned_zeros"] = pruned_zeros(runner, pqat.weights_in_twin_layout(twin))
        sizes[key] = file_sizes(path)
        emb = task.weights.get(f"{EMBEDDING_LAYER}/embeddings")
        if emb is not None:
            info["embedding_bytes"] = embedding_bytes(runner, tuple(emb.shape), sizes[key])
        lite[key] = info
        result["files"].append(info["file"])
        if not zero["all_zero"]:
            raise RuntimeError(f"{role}: PQAT left {zero['nonzero_after_fine_tune']} pruned weights non-zero: "
                               f"{zero['nonzero_by_tensor']}")
        if not info["full_integer"]:
            log(f"export: warning: {key} is not full-integer: float tensors {info['float_tensors'][:5]}")
        log(f"export: {role} PQAT: pruned weights still exactly 0 after fine-tuning: {zero['pruned']:,} of "
            f"{zero['pruned']:,}; full-integer file: {'yes' if info['full_integer'] else 'NO'} (tensor types "
            f"{info['tensor_dtypes']})")
        log(describe_lite(key, info, sizes[key], "test texts" if ex.labels is not None else "random id sequences"))
    return result
