"""What an export says about itself: `metadata.json` (where the models come from and how to call them) and
`export_report.json`/`.md` (sizes, agreement, accuracy, latency; the table is also printed)."""
from __future__ import annotations

import os
import time

from lth_tf import atomic
from lth_tf.export.sizes import parameter_counts
from lth_tf.export.ticket import LoadedRun, LoadedTask
from lth_tf.keras import tf
from lth_tf.sparsity import masks as masks_lib

METADATA, REPORT_JSON, REPORT_MD = "metadata.json", "export_report.json", "export_report.md"


def metadata(run: LoadedRun, ticket: LoadedTask, dense_metrics: dict, length: int, tflite: bool,
             contract: dict | None = None, pqat: bool = False) -> dict:
    cfg = run.cfg
    sparsity = masks_lib.sparsity_report(ticket.masks) if ticket.masks else None
    return {
        "run_dir": os.path.abspath(run.dir.path), "run_name": run.name, "run_hash": run.run_hash,
        "replicate": ticket.replicate, "level": ticket.level, "branch": ticket.branch,
        "model": cfg.model.model, "settings": cfg.to_dict(),
        "sparsity": {"overall": ticket.metrics.get("sparsity"),
                     "without_embedding": ticket.metrics.get("sparsity_without_embedding"),
                     "by_tensor": ({n: t["sparsity"] for n, t in sparsity["tensors"].items()} if sparsity else {})},
        "valid_accuracy": ticket.metrics.get("valid_accuracy"), "test_accuracy": ticket.metrics.get("test_accuracy"),
        "dense": {"valid_accuracy": dense_metrics.get("valid_accuracy"),
                  "test_accuracy": dense_metrics.get("test_accuracy")},
        "class_names": run.class_names, "num_classes": run.num_classes, "vocab_size": len(run.vocab),
        "parameters": parameter_counts(ticket.weights),
        "input": {
            "saved_model": {
                "serving_default": "texts: tf.string [None], raw UTF-8 text; tokenised in the graph with "
                                   "lth_tf.data.tokenize_tf, unknown tokens -> 1 (<unk>), zero-padded"
                                   + (f", first {cfg.data.max_len} tokens kept" if cfg.data.max_len else ""),
                "token_ids": "token_ids: tf.int32 [None, None], ids of vocab.txt (0 = padding, 1 = unknown), "
                             "right-padded with 0",
                "outputs": f"probabilities: float32 [None, {run.num_classes}] (class order of class_names, "
                           f"labels.txt); class_ids: int32 [None]; class_name: string [None] (the predicted "
                           f"class); class_names: string [None, {run.num_classes}] (every row: the class names in "
                           f"column order); serving_default also token_ids: int32 [None, T] (the ids the network "
                           f"read, right-padded with 0)",
                "batch": "each text's outputs are the network's on that text alone, whatever else is in the "
                         "batch"},
            "tflite": {"token_ids": f"int32 [1, {length}]: ids of vocab.txt, right-padded with 0; longer texts "
                                    f"truncated to their first {length} tokens; only the ids up to the last "
                                    "non-zero one are read",
                       "length": length,
                       "output": f"probabilities: float32 [1, {run.num_classes}] (*_pqat_int8.tflite: int8 "
                                 f"[1, {run.num_classes}]; probability = (q - zero_point) * scale, from the "
                                 f"output tensor's quantization parameters)",
                       "files": ["ticket_float.tflite", "ticket_int8.tflite"]
                       + (["ticket_pqat_int8.tflite"] if pqat else []),
                       "stateful": "call reset_all_variables() before every invoke (the fused LSTM keeps its "
                                   "state in variable tensors; harmless for the CNN)"} if tflite else None,
        },
        "contract": contract,
        "tensorflow": tf.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_metadata(out: str, meta: dict) -> None:
    atomic.write_json(os.path.join(out, METADATA), meta)


def write_report(out: str, report: dict) -> str:
    """export_report.json and .md into the export directory `out`; returns the table."""
    atomic.write_json(os.path.join(out, REPORT_JSON), report)
    table = format_table(report)
    atomic.write_text(os.path.join(out, REPORT_MD), table + "\n")
    return table


def fmt_pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def _fmt_bytes(n):
    return "-" if n is None else f"{n:,}"


def _fmt_ratio(a, b):
    return "-" if not b else f"{a / b:.3f}"


FORMATS = (("saved_model", "SavedModel variables"), ("float", "TFLite float32"),
           ("int8", "TFLite int8 (dynamic range)"), ("pqat_int8", "TFLite int8 (PQAT, full integer)"))


def format_table(report: dict) -> str:
    meta, sizes, lite = report["metadata"], report["sizes"], report["tflite"]
    p = meta["parameters"]
    lines = [f"### {meta['run_name']} r{meta['replicate']} level {meta['level']} ({meta['branch']}): "
             f"sparsity {fmt_pct(meta['sparsity']['overall'])} "
             f"({fmt_pct(meta['sparsity']['without_embedding'])} without the embedding)", "",
             f"Valid / test accuracy (Keras, as trained): ticket {fmt_pct(meta['valid_accuracy'])} / "
             f"{fmt_pct(meta['test_accuracy'])}, dense {fmt_pct(meta['dense']['valid_accuracy'])} / "
             f"{fmt_pct(meta['dense']['test_accuracy'])}. Embedding: {p['embedding_share'] * 100:.1f}% of the "
             f"parameters, {p['embedding_share_of_nonzero'] * 100:.1f}% of the ticket's non-zero ones.", "",
             (f"TFLite checked on: {report['verification']}; latency: median of "
              f"{next((v['latency_runs'] for v in lite.values()), 0)} single-text invokes, "
              f"{report['num_threads']} thread(s)." if lite else "No TFLite conversion (--notflite)."), "",
             "| network | format | raw bytes | gzip -9 bytes | raw / dense | gzip / dense | agreement with Keras "
             "| accuracy (Keras on same input) | pruned weights stored as 0 | embedding share raw / gzip "
             "| latency ms | interpreter |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for role in ("dense", "ticket"):
        for fmt, label in FORMATS:
            s = sizes.get(f"{role}/{fmt}")
            if s is None:
                continue
            d = sizes.get(f"dense/{fmt}") or (s if meta["level"] == 0 else None)  # level 0: the dense itself
            info = lite.get(f"{role}/{fmt}", {})
            emb = info.get("embedding_bytes")
            emb_share = f"{100 * emb['share_of_raw']:.0f}% / {100 * emb['share_of_gzip']:.0f}%" if emb else "-"
            ms = info.get("latency_ms_median")
            kept = (info.get("pruned_zeros") or {}).get("fraction_kept")
            lines.append(
                f"| {role} | {label} | {_fmt_bytes(s['raw_bytes'])} | {_fmt_bytes(s['gzip_bytes'])} | "
                f"{_fmt_ratio(s['raw_bytes'], d and d['raw_bytes'])} | "
                f"{_fmt_ratio(s['gzip_bytes'], d and d['gzip_bytes'])} | "
                f"{fmt_pct(info.get('agreement'))} | "
                f"{fmt_pct(info.get('accuracy'))} ({fmt_pct(info.get('keras_accuracy_same_input'))}) | "
                f"{fmt_pct(kept)} | {emb_share} | {'-' if ms is None else f'{ms:.3f}'} | "
                f"{info.get('resolver', '-')} |")
    lines += _pqat_lines(report)
    return "\n".join(lines)


def _pqat_lines(report: dict) -> list[str]:
    """What the table cannot say about --pqat."""
    pq = report.get("pqat")
    if not pq:
        return []
    if not pq.get("supported"):
        return ["", f"PQAT (--pqat): not for this network. {pq['reason']} (quantize_apply: {pq['quantize_apply']}). "
                    f"Best supported path: {pq['instead']}."]
    if pq.get("skipped"):
        return ["", f"PQAT (--pqat) skipped: {pq['skipped']}."]
    lines = ["", f"PQAT (--pqat): {pq['scheme']}, fine-tuned {pq['epochs']} epoch(s) on the {pq['training_texts']:,} "
                 f"training texts (Adam {pq['learning_rate']:g}, batch {pq['batch_size']}), calibrated on "
                 f"{pq['representative_texts']} of them; agreement and accuracy above are against the float Keras "
                 f"network before fine-tuning."]
    for key, info in report["tflite"].items():
        if not key.endswith("/pqat_int8"):
            continue
        q, zero = info["pqat"], info["pqat"]["pruned_still_zero"]
        lines.append(f"- {key.split('/')[0]}: pruned weights still 0 after fine-tuning: "
                     f"{zero['pruned'] - zero['nonzero_after_fine_tune']:,} of {zero['pruned']:,}; quantization-aware "
                     f"Keras model accuracy {fmt_pct(q['qat_keras_accuracy'])}, the int8 file agrees with it on "
                     f"{fmt_pct(q['tflite_vs_qat_keras_agreement'])}; full integer: "
                     f"{'yes' if info['full_integer'] else 'no'} (input {info['input_dtype']}, output "
                     f"{info['output_dtype']}, tensors {info['tensor_dtypes']})")
    return lines
