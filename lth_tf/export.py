"""Export a lottery ticket of a finished run: a SavedModel that takes raw text, and TFLite models.

    python -m lth_tf.export --run_dir=runs/cnn_imdb_<hash> [--level=N] [--replicate=0] [--branch=ticket]
                            [--export_dir=saved_models] [--no_tflite] [--tflite_length=256]
                            [--max_examples=2000] [--latency_runs=100]

`export_run` rebuilds the network of the run (config.json, vocab.txt, data.json), loads the trained weights
of one task (`r{rep}/level_{LL}/{branch}/weights.npz`), checks that every weight its mask prunes is exactly
zero, and writes, into one directory that appears only when complete (built in a temporary directory, then
renamed):

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
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from typing import Callable

import numpy as np

from lth_tf import atomic
from lth_tf.sparsity import masks as masks_lib, registry
from lth_tf.config import BRANCHES, RunConfig
from lth_tf.errors import UserError
from lth_tf.keras import keras, tf
from lth_tf.nets.models import EMBEDDING_LAYER, PAD_ID, UNK_ID, build_model, predictions, probabilities

DEFAULT_TFLITE_LENGTH = 256
DEFAULT_MAX_EXAMPLES = 2000
DEFAULT_LATENCY_RUNS = 100
GZIP_LEVEL = 9
RESOLVER_DEFAULT = "default (XNNPack delegate)"
RESOLVER_FALLBACK = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
FUSED_LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM")


# ------------------------------------------------------------------------------------------ the run ---
@dataclasses.dataclass
class Run:
    run_dir: str
    name: str
    cfg: RunConfig
    run_hash: str
    vocab: list[str]
    class_names: list[str]
    num_classes: int


def _read_json(path: str, what: str):
    try:
        return atomic.read_json(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing ({what}); is this a run directory written by lth_tf.main?") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read {what} ({e})") from None


def read_vocab(path: str) -> list[str]:
    """vocab.txt: one token per line, line i = id i. Tokens never hold whitespace (the tokeniser splits on
    it), so lines are split on '\\n' only; bytes that are not UTF-8 survive (surrogateescape)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: missing (the run's vocabulary); rerun lth_tf.main on this run directory to "
                        f"write it") from None
    vocab = text.split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    if len(vocab) < 2:
        raise UserError(f"{path}: a vocabulary needs at least <pad> and <unk>, found {len(vocab)} lines")
    seen: dict[str, int] = {}
    for i, token in enumerate(vocab):
        if token in seen:
            raise UserError(f"{path}: token {token!r} appears twice (lines {seen[token] + 1} and {i + 1})")
        seen[token] = i
    return vocab


def load_run(run_dir: str) -> Run:
    if not run_dir:
        raise UserError("--run_dir is required: a run directory such as runs/cnn_imdb_<hash>")
    if not os.path.isdir(run_dir):
        raise UserError(f"--run_dir={run_dir}: no such directory")
    config = _read_json(os.path.join(run_dir, "config.json"), "the run's settings")
    if not isinstance(config, dict) or "settings" not in config:
        raise UserError(f"{run_dir}/config.json: no 'settings' (not written by lth_tf.main?)")
    cfg = RunConfig.from_dict(config["settings"])
    data_info = _read_json(os.path.join(run_dir, "data.json"), "class names")
    class_names = [str(c) for c in data_info.get("class_names", [])]
    num_classes = int(data_info.get("num_classes", len(class_names)))
    if num_classes < 2 or len(class_names) != num_classes:
        raise UserError(f"{run_dir}/data.json: {num_classes} classes but class names {class_names}")
    vocab = read_vocab(os.path.join(run_dir, "vocab.txt"))
    name = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    return Run(run_dir=run_dir, name=name, cfg=cfg, run_hash=str(config.get("run_hash") or cfg.run_hash()),
               vocab=vocab, class_names=class_names, num_classes=num_classes)


def task_dir(run_dir: str, replicate: int, level: int, branch: str) -> str:
    return os.path.join(run_dir, f"r{replicate}", f"level_{level:02d}", branch)


def finished_levels(run_dir: str, replicate: int, branch: str) -> dict[int, dict]:
    """{level: metrics} of the finished tasks (metrics.json written) of one replicate and branch; level 0
    (dense, stored under 'ticket') is included for every branch."""
    rdir = os.path.join(run_dir, f"r{replicate}")
    if not os.path.isdir(rdir):
        found = sorted(d for d in os.listdir(run_dir) if re.fullmatch(r"r\d+", d))
        raise UserError(f"--replicate={replicate}: {run_dir} has no {rdir!r} (replicates found: "
                        f"{', '.join(found) or 'none'})")
    out = {}
    for entry in sorted(os.listdir(rdir)):
        m = re.fullmatch(r"level_(\d+)", entry)
        if not m:
            continue
        level = int(m.group(1))
        path = os.path.join(task_dir(run_dir, replicate, level, "ticket" if level == 0 else branch), "metrics.json")
        if os.path.exists(path):
            out[level] = _read_json(path, "a task's metrics")
    return out


def choose_level(run_dir: str, replicate: int = 0, branch: str = "ticket") -> int:
    """The level whose validation accuracy is highest among the pruned levels (>= 1) of this replicate and
    branch (ties: the sparser), as the run's summary picks its ticket; level 0 if no pruned level finished."""
    levels = finished_levels(run_dir, replicate, branch)
    pruned = {lvl: m for lvl, m in levels.items() if lvl >= 1}
    if pruned:
        return max(pruned, key=lambda lvl: (pruned[lvl]["valid_accuracy"], lvl))
    if 0 in levels:
        return 0
    raise UserError(f"{run_dir}: replicate {replicate} has no finished task yet (no metrics.json)")


# ------------------------------------------------------------------------------------ the network ---
def _load_npz(path: str, what: str) -> dict[str, np.ndarray]:
    try:
        return atomic.read_npz(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing ({what}); runs made before weights.npz was saved must be rerun "
                        f"(finished tasks are redone only after deleting their metrics.json)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read {what} ({e})") from None


def rebuild(run: Run, weights: dict[str, np.ndarray]) -> keras.Model:
    """The run's network (build_model; the seed does not matter) holding `weights` (all of them, by name)."""
    matrix = weights.get(f"{EMBEDDING_LAYER}/embeddings")  # its shape also covers a GloVe embedding's width
    if matrix is not None and matrix.shape[0] != len(run.vocab):
        raise UserError(f"the embedding has {matrix.shape[0]} rows but vocab.txt {len(run.vocab)} tokens")
    model = build_model(run.cfg.model, len(run.vocab), run.num_classes, seed=0, embedding_matrix=matrix)
    variables = registry.all_weights(model)
    missing, extra = sorted(set(variables) - set(weights)), sorted(set(weights) - set(variables))
    if missing or extra:
        raise UserError(f"weights.npz does not match the network of config.json: missing {missing or 'none'}, "
                        f"extra {extra or 'none'}")
    for name, var in variables.items():
        if tuple(weights[name].shape) != tuple(var.shape):
            raise UserError(f"weights.npz: {name} has shape {weights[name].shape}, the network's is {tuple(var.shape)}")
        var.assign(weights[name])
    return model


def check_pruned_zero(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray], source: str) -> None:
    """Every weight a mask prunes must be exactly 0.0 in the trained weights."""
    for name, mask in masks.items():
        if name not in weights:
            raise UserError(f"{source}: mask of {name!r}, which weights.npz does not hold")
        if mask.shape != weights[name].shape:
            raise UserError(f"{source}: mask of {name} has shape {mask.shape}, the weight {weights[name].shape}")
        bad = int(np.count_nonzero(weights[name][~mask]))
        if bad:
            raise UserError(f"{source}: {bad} weights of {name} that the mask prunes are not zero: these weights "
                            f"were not trained under this mask")


@dataclasses.dataclass
class Task:
    replicate: int
    level: int
    branch: str
    weights: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    metrics: dict
    model: keras.Model


def load_task(run: Run, replicate: int, level: int, branch: str) -> Task:
    if level == 0:
        branch = "ticket"  # the dense level is shared by every branch
    directory = task_dir(run.run_dir, replicate, level, branch)
    metrics_path = os.path.join(directory, "metrics.json")
    if not os.path.exists(metrics_path):
        available = sorted(finished_levels(run.run_dir, replicate, branch))
        raise UserError(f"--level={level} --branch={branch} --replicate={replicate}: not a finished task of "
                        f"{run.run_dir} (finished levels: {', '.join(map(str, available)) or 'none'})")
    metrics = _read_json(metrics_path, "the task's metrics")
    weights = _load_npz(os.path.join(directory, "weights.npz"), "the trained weights")
    mask_path = os.path.join(directory, "mask.npz")
    if os.path.exists(mask_path):
        masks = masks_lib.load_masks(mask_path)
    elif level == 0:
        masks = {}
    else:
        raise UserError(f"{mask_path}: missing (the ticket's mask)")
    check_pruned_zero(weights, masks, directory)
    model = rebuild(run, weights)
    return Task(replicate, level, branch, weights, masks, metrics, model)


@contextlib.contextmanager
def padding_mask_off(model: keras.Model):
    """Within the block the network's embedding emits no padding mask (mask_zero off; it is read when a
    function is traced). Fed only the real tokens of one text, the network then computes what it does with
    the mask, and Keras' LSTM traces to the function that the TFLite converter fuses into
    UNIDIRECTIONAL_SEQUENCE_LSTM (a masked LSTM stays a WHILE loop)."""
    embedding = model.get_layer(EMBEDDING_LAYER)
    before = embedding.mask_zero
    embedding.mask_zero = False
    try:
        yield model
    finally:
        embedding.mask_zero = before


# ---------------------------------------------------------------------------------- SavedModel ---
def _tokenize_tf():
    try:
        from lth_tf.data import tokenize_tf
    except ImportError as e:  # pragma: no cover - lth_tf.data ships with the package
        raise UserError(f"cannot import lth_tf.data.tokenize_tf ({e}): the text signature needs the tokeniser")
    return tokenize_tf


class ServingModule(tf.Module):
    """What the SavedModel holds: the network's variables by stable name, the vocabulary table, and two
    functions. The Keras model is closed over, not tracked, so nothing Keras-specific is saved."""

    def __init__(self, model: keras.Model, vocab: list[str], num_classes: int, max_len: int = 0):
        super().__init__(name="lth_tf_export")
        self.named_weights = dict(registry.all_weights(model))
        keys = [t.encode("utf-8", "surrogateescape") for t in vocab[2:]]  # <pad>/<unk> are never looked up
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                                tf.range(2, len(vocab), dtype=tf.int64)),
            default_value=UNK_ID)
        tokenize = _tokenize_tf()

        def outputs(ids):
            logits = model(ids, training=False)
            return {"probabilities": probabilities(logits, num_classes),
                    "class_ids": predictions(logits, num_classes)}

        def serve_ids(token_ids):
            return outputs(token_ids)

        def serve_text(texts):
            tokens = tokenize(texts)
            if max_len > 0:
                tokens = tokens[:, :max_len]
            ids = tf.cast(tf.ragged.map_flat_values(self.table.lookup, tokens), tf.int32)
            dense = ids.to_tensor(default_value=PAD_ID)
            dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])  # at least one column
            return outputs(dense)

        self.serve_text = tf.function(serve_text, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        self.serve_ids = tf.function(serve_ids,
                                     input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])


def save_saved_model(model: keras.Model, run: Run, path: str) -> None:
    module = ServingModule(model, run.vocab, run.num_classes, run.cfg.data.max_len)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve_text,
                                                  "token_ids": module.serve_ids})


# -------------------------------------------------------------------------------------- TFLite ---
class LiteModule(tf.Module):
    """The TFLite entry point: ids [1, L] -> probabilities [1, C], reading the ids up to the last non-zero."""

    def __init__(self, model: keras.Model, num_classes: int, length: int):
        super().__init__(name="lth_tf_tflite")
        self.named_weights = dict(registry.all_weights(model))

        def serve(token_ids):
            positions = tf.range(1, length + 1, dtype=tf.int32)
            n = tf.maximum(tf.reduce_max(tf.where(token_ids[0] != PAD_ID, positions, 0)), 1)
            logits = model(token_ids[:, :n], training=False)
            return {"probabilities": probabilities(logits, num_classes)}

        self.serve = tf.function(serve, input_signature=[tf.TensorSpec([1, length], tf.int32, name="token_ids")])


def convert_tflite(module: LiteModule, int8: bool) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    return converter.convert()


def _litert():
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        return Interpreter, OpResolverType, "ai_edge_litert"
    except ImportError:  # pragma: no cover - the `litert` extra not installed
        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, "tf.lite"


class LiteRunner:
    """One TFLite model in an interpreter. Tries the default op resolver (with the XNNPack delegate) first;
    if loading or a first invoke fails (as sparse int8 models can), retries without default delegates."""

    def __init__(self, content: bytes, num_threads: int = 1):
        interpreter_cls, resolvers, self.package = _litert()
        self.fallback_reason = None
        try:
            self._open(interpreter_cls, content, num_threads, None)
            self.resolver = RESOLVER_DEFAULT
        except (RuntimeError, ValueError) as e:
            self.fallback_reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            self._open(interpreter_cls, content, num_threads, resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            self.resolver = RESOLVER_FALLBACK

    def _open(self, interpreter_cls, content, num_threads, resolver):
        kwargs = {"experimental_op_resolver_type": resolver} if resolver is not None else {}
        it = interpreter_cls(model_content=content, num_threads=num_threads, **kwargs)
        it.allocate_tensors()
        inp, out = it.get_input_details(), it.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ValueError(f"expected one input and one output, got {len(inp)} and {len(out)}")
        self.it, self.input, self.output = it, inp[0], out[0]
        self.length = int(self.input["shape"][1])
        self.predict(np.zeros(self.length, np.int32))  # a delegate may fail only when first run

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Probabilities [C] of one text: ids [L] int32, right-padded with 0."""
        self.it.reset_all_variables()  # the fused LSTM's state lives in variable tensors
        self.it.set_tensor(self.input["index"], ids.reshape(1, -1))
        self.it.invoke()
        return self.it.get_tensor(self.output["index"])[0].copy()

    def ops(self) -> list[str] | None:
        try:
            return sorted({d["op_name"] for d in self.it._get_ops_details()})
        except Exception:  # noqa: BLE001 - a private API; the op list is informative only
            return None

    def find_tensor(self, shape: tuple) -> np.ndarray | None:
        """The stored values of a constant of this shape (int8 preferred, for quantized models)."""
        candidates = []
        for d in self.it.get_tensor_details():
            if tuple(d["shape"]) == tuple(shape):
                try:
                    candidates.append(self.it.get_tensor(d["index"]))
                except ValueError:
                    continue
        candidates.sort(key=lambda a: a.dtype.itemsize)
        return candidates[0] if candidates else None


def check_ops(model_kind: str, ops: list[str] | None) -> dict:
    """The converted model's builtin ops: no Flex/custom ops, and for the LSTM the fused sequence op."""
    if ops is None:
        return {"ops": None, "flex_or_custom": None, "fused_lstm": None}
    flex = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    if flex:
        raise RuntimeError(f"the converted {model_kind} needs ops no builtin interpreter runs: {flex}")
    info = {"ops": ops, "flex_or_custom": flex}
    if model_kind == "lstm":
        info["fused_lstm"] = any(op in FUSED_LSTM_OPS for op in ops)
        info["while_loop"] = "WHILE" in ops
    return info


# -------------------------------------------------------------------------------- verification ---
@dataclasses.dataclass
class Examples:
    ids: np.ndarray  # int32 [N, L], right-padded
    lengths: np.ndarray  # tokens kept (<= L)
    labels: np.ndarray | None
    source: str


def verification_examples(run: Run, data, max_examples: int, length: int, log: Callable) -> Examples:
    """The first `max_examples` test texts, truncated to `length` tokens; random ids if the test split is
    unavailable (then no accuracy is reported)."""
    reason = None
    if data is None and max_examples > 0:
        try:
            from lth_tf.data import prepare_data

            cfg = run.cfg
            data = prepare_data(cfg.data, cfg.data.resolved_vocab_size(cfg.model.model), log=log)
        except (UserError, OSError, ImportError) as e:
            reason = f"test split unavailable ({e})"
    if data is not None and list(data.vocab) != list(run.vocab):
        reason, data = "the prepared data's vocabulary differs from the run's vocab.txt", None
    n = max(0, int(max_examples))
    if data is not None:
        split = data.test.take(np.arange(min(n, len(data.test))))
        lengths = np.minimum(split.lengths(), length).astype(np.int64)
        ids = np.zeros((len(split), length), np.int32)
        for i, (a, k) in enumerate(zip(split.offsets[:-1], lengths)):
            ids[i, :k] = split.token_ids[a:a + k]
        return Examples(ids, lengths, np.asarray(split.labels, np.int64),
                        f"test split, first {len(split)} of {len(data.test)} texts, truncated to {length} tokens")
    if reason:
        log(f"export: warning: {reason}; verifying on random token ids (no accuracy)")
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, length + 1, size=n)
    ids = np.zeros((n, length), np.int32)
    for i, k in enumerate(lengths):
        ids[i, :k] = rng.integers(2, len(run.vocab), size=k) if len(run.vocab) > 2 else UNK_ID
    return Examples(ids, lengths, None, f"{n} random token-id sequences" + (f" ({reason})" if reason else ""))


def keras_probabilities(model: keras.Model, ex: Examples, num_classes: int, batch: int = 128) -> np.ndarray:
    """The Keras model's probabilities for each text alone: its first `lengths[i]` ids, no padding. A network
    that masks padding (the LSTM) gives exactly that on the right-padded batch; otherwise (the CNN, whose
    convolutions see padding) texts of one length go through together, the same numbers as one at a time."""
    out = np.zeros((len(ex.lengths), num_classes), np.float32)
    keep = np.maximum(ex.lengths, 1)
    masked = bool(getattr(model.get_layer(EMBEDDING_LAYER), "mask_zero", False))
    groups = [np.arange(len(keep))] if masked else [np.flatnonzero(keep == n) for n in np.unique(keep)]
    for idx in groups:
        for start in range(0, len(idx), batch):
            chunk = idx[start:start + batch]
            logits = model(tf.constant(ex.ids[chunk, :int(keep[chunk].max())]), training=False)
            out[chunk] = probabilities(logits, num_classes).numpy()
    return out


def verify_lite(runner: LiteRunner, ex: Examples, reference: np.ndarray, latency_runs: int) -> dict:
    probs = np.stack([runner.predict(row) for row in ex.ids]) if len(ex.ids) else np.zeros((0, reference.shape[1]))
    pred, ref_pred = probs.argmax(-1), reference.argmax(-1)
    result = {"examples": int(len(ex.ids)),
              "agreement": float(np.mean(pred == ref_pred)) if len(pred) else None,
              "disagreements": int(np.sum(pred != ref_pred)),
              "max_abs_probability_diff": float(np.abs(probs - reference).max()) if len(pred) else None,
              "accuracy": float(np.mean(pred == ex.labels)) if ex.labels is not None and len(pred) else None}
    result.update(latency(runner, ex, latency_runs))
    return result


def latency(runner: LiteRunner, ex: Examples, runs: int) -> dict:
    if runs <= 0:
        return {"latency_ms_median": None, "latency_runs": 0}
    rows = ex.ids if len(ex.ids) else np.zeros((1, runner.length), np.int32)
    for row in rows[:3]:  # warm-up
        runner.predict(row)
    times = []
    for i in range(runs):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        runner.predict(row)
        times.append(time.perf_counter() - start)
    return {"latency_ms_median": 1000 * statistics.median(times), "latency_runs": runs}


def check_saved_model(path: str, model: keras.Model, run: Run, ex: Examples, limit: int = 64) -> dict:
    """Reload the SavedModel: its token-id signature against Keras on the same padded batch, and its text
    signature on texts rebuilt from the ids (a smoke test: re-tokenising joined tokens is not always exact)."""
    loaded = tf.saved_model.load(path)
    ids = ex.ids[:limit]
    if not len(ids):
        return {"checked": 0}
    width = max(1, int(ex.lengths[:limit].max()))
    batch = tf.constant(ids[:, :width])
    got = loaded.signatures["token_ids"](token_ids=batch)["probabilities"].numpy()
    want = probabilities(model(batch, training=False), run.num_classes).numpy()
    texts = [" ".join(run.vocab[i] for i in row[:k] if i > UNK_ID) for row, k in zip(ids, ex.lengths[:limit])]
    from_text = loaded.signatures["serving_default"](texts=tf.constant(texts))["probabilities"].numpy()
    return {"checked": int(len(ids)),
            "token_ids_max_abs_diff": float(np.abs(got - want).max()),
            "token_ids_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1))),
            "text_probabilities_sum_to_one": bool(np.allclose(from_text.sum(-1), 1.0, atol=1e-5)),
            "text_roundtrip_agreement": float(np.mean(from_text.argmax(-1) == got.argmax(-1)))}


# ------------------------------------------------------------------------------------------ sizes ---
def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))


def file_sizes(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    return {"raw_bytes": len(data), "gzip_bytes": gzip_size(data)}


def dir_sizes(path: str) -> dict:
    """Sum over the files of a directory of their raw and gzip -9 sizes (each file compressed alone)."""
    raw = gz = 0
    for folder, _, files in os.walk(path):
        for name in sorted(files):
            s = file_sizes(os.path.join(folder, name))
            raw, gz = raw + s["raw_bytes"], gz + s["gzip_bytes"]
    return {"raw_bytes": raw, "gzip_bytes": gz}


def parameter_counts(weights: dict[str, np.ndarray]) -> dict:
    total = sum(int(w.size) for w in weights.values())
    nonzero = sum(int(np.count_nonzero(w)) for w in weights.values())
    emb = weights.get(f"{EMBEDDING_LAYER}/embeddings")
    emb_total = int(emb.size) if emb is not None else 0
    emb_nonzero = int(np.count_nonzero(emb)) if emb is not None else 0
    return {"total": total, "nonzero": nonzero, "zero_fraction": 1 - nonzero / total if total else 0.0,
            "embedding": emb_total, "embedding_nonzero": emb_nonzero,
            "embedding_share": emb_total / total if total else 0.0,
            "embedding_share_of_nonzero": emb_nonzero / nonzero if nonzero else 0.0}


def embedding_bytes(runner: LiteRunner, shape: tuple, file_size: dict) -> dict | None:
    """The embedding's stored buffer in a TFLite file: raw and gzip -9 of that buffer alone, and its share of
    the file's raw and gzip sizes (gzip is not additive over parts: the gzip share is an estimate)."""
    values = runner.find_tensor(shape)
    if values is None:
        return None
    data = np.ascontiguousarray(values).tobytes()
    raw, gz = len(data), gzip_size(data)
    return {"dtype": str(values.dtype), "raw_bytes": raw, "gzip_bytes": gz,
            "share_of_raw": raw / file_size["raw_bytes"], "share_of_gzip": gz / file_size["gzip_bytes"]}


# ---------------------------------------------------------------------------------------- export ---
def export_name(run: Run, replicate: int, level: int, branch: str) -> str:
    return f"{run.name}_r{replicate}_L{level:02d}_{branch}"


def _publish_modes(root: str) -> None:
    """mkdtemp/mkstemp create owner-only entries: give the export the modes the umask allows (like any file)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            os.chmod(os.path.join(folder, d), 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o666 & ~umask)


def _replace_dir(tmp: str, final: str) -> None:
    """Move the finished `tmp` to `final`; a previous export there is moved aside first, then deleted."""
    _publish_modes(tmp)
    old = None
    if os.path.exists(final):
        old = os.path.join(os.path.dirname(final), f".old-{os.path.basename(final)}-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale(export_dir: str, name: str) -> None:
    """Temporary directories that a killed export of the same name left behind."""
    for entry in os.listdir(export_dir):
        if entry.startswith((f".tmp-{name}-", f".old-{name}-")):
            shutil.rmtree(os.path.join(export_dir, entry), ignore_errors=True)


def _ratio(a, b):
    return a / b if a is not None and b else None


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
        level = choose_level(run_dir, replicate, branch)
        log(f"export: level {level} chosen on validation accuracy (replicate {replicate}, branch {branch})")
    elif level < 0:
        raise UserError(f"--level={level}: must be 0 or more")
    ticket = load_task(run, replicate, level, branch)
    level, branch = ticket.level, ticket.branch
    dense_task = load_task(run, replicate, 0, "ticket") if dense and level > 0 else None
    dense_metrics = finished_levels(run_dir, replicate, "ticket").get(0, {})
    kind = run.cfg.model.model
    length = tflite_length or run.cfg.data.max_len or DEFAULT_TFLITE_LENGTH

    name = export_name(run, replicate, level, branch)
    os.makedirs(export_dir, exist_ok=True)
    _remove_stale(export_dir, name)
    final = os.path.join(export_dir, name)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=export_dir)
    try:
        report = _export_into(tmp, run, ticket, dense_task, dense_metrics, kind, length, tflite, data, log,
                              max_examples, latency_runs, num_threads)
        report["path"] = os.path.abspath(final)
        report["seconds"] = time.perf_counter() - started
        atomic.write_json(os.path.join(tmp, "export_report.json"), report)
        table = format_table(report)
        atomic.write_text(os.path.join(tmp, "export_report.md"), table + "\n")
        _replace_dir(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"export: wrote {final} ({report['seconds']:.0f}s)")
    log(table)
    return report


def _export_into(out: str, run: Run, ticket: Task, dense_task: Task | None, dense_metrics: dict, kind: str, length: int,
                 tflite: bool, data, log, max_examples: int, latency_runs: int, num_threads: int) -> dict:
    cfg = run.cfg
    sparsity = masks_lib.sparsity_report(ticket.masks) if ticket.masks else None
    emb = ticket.weights.get(f"{EMBEDDING_LAYER}/embeddings")
    emb_shape = tuple(emb.shape) if emb is not None else None
    models = {"ticket": ticket} if dense_task is None else {"dense": dense_task, "ticket": ticket}

    log(f"export: {run.name} replicate {ticket.replicate} level {ticket.level} ({ticket.branch}), "
        f"sparsity {100 * ticket.metrics.get('sparsity', 0.0):.2f}%")
    sizes, checks = {}, {}
    ex = verification_examples(run, data, max_examples, length, log)
    for role, task in models.items():
        sm_path = os.path.join(out, "saved_model") if role == "ticket" else os.path.join(out, "dense", "saved_model")
        save_saved_model(task.model, run, sm_path)
        sizes[f"{role}/saved_model"] = {**dir_sizes(os.path.join(sm_path, "variables")),
                                        "whole_dir_raw_bytes": dir_sizes(sm_path)["raw_bytes"]}
        checks[f"{role}/saved_model"] = check_saved_model(sm_path, task.model, run, ex)
        log(f"export: {role} SavedModel written; reload check {json.dumps(checks[f'{role}/saved_model'])}")

    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write("\n".join(run.vocab) + "\n")

    lite = {}
    if tflite:
        for role, task in models.items():
            reference = keras_probabilities(task.model, ex, run.num_classes)
            keras_acc = float(np.mean(reference.argmax(-1) == ex.labels)) if ex.labels is not None and len(ex.ids) else None
            module = LiteModule(task.model, run.num_classes, length)
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
                        "keras_accuracy_same_input": keras_acc, **check_ops(kind, runner.ops())}
                if kind == "lstm" and info.get("fused_lstm") is False:
                    log(f"export: warning: {key} has no fused LSTM op (ops: {info['ops']})")
                info.update(verify_lite(runner, ex, reference, latency_runs))
                sizes[key] = file_sizes(path)
                if emb_shape:
                    info["embedding_bytes"] = embedding_bytes(runner, emb_shape, sizes[key])
                lite[key] = info
                log(f"export: {key}.tflite {sizes[key]['raw_bytes']:,} B (gzip {sizes[key]['gzip_bytes']:,}), "
                    f"agreement {_fmt_pct(info['agreement'])}, accuracy {_fmt_pct(info['accuracy'])}, "
                    f"{runner.resolver}")

    ratios = {}
    if dense_task is not None:
        for fmt in ("saved_model", "float", "int8"):
            d, t = sizes.get(f"dense/{fmt}"), sizes.get(f"ticket/{fmt}")
            if d and t:
                ratios[fmt] = {"raw": _ratio(t["raw_bytes"], d["raw_bytes"]),
                               "gzip": _ratio(t["gzip_bytes"], d["gzip_bytes"])}
    metadata = {
        "run_dir": os.path.abspath(run.run_dir), "run_name": run.name, "run_hash": run.run_hash,
        "replicate": ticket.replicate, "level": ticket.level, "branch": ticket.branch,
        "model": kind, "settings": cfg.to_dict(),
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
                "outputs": f"probabilities: float32 [None, {run.num_classes}] (class order of class_names); "
                           "class_ids: int32 [None]"},
            "tflite": {"token_ids": f"int32 [1, {length}]: ids of vocab.txt, right-padded with 0; longer texts "
                                    f"truncated to their first {length} tokens; only the ids up to the last "
                                    "non-zero one are read",
                       "length": length,
                       "output": f"probabilities: float32 [1, {run.num_classes}]",
                       "stateful": "call reset_all_variables() before every invoke (the fused LSTM keeps its "
                                   "state in variable tensors; harmless for the CNN)"} if tflite else None,
        },
        "tensorflow": tf.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic.write_json(os.path.join(out, "metadata.json"), metadata)
    return {"metadata": metadata, "sizes": sizes, "ratios_ticket_vs_dense": ratios, "tflite": lite,
            "saved_model_checks": checks, "verification": ex.source,
            "tflite_length": length, "num_threads": num_threads,
            "gzip": f"gzip level {GZIP_LEVEL} of each file (directories: each file alone, summed)"}


# ------------------------------------------------------------------------------------------ table ---
def _fmt_pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def _fmt_bytes(n):
    return "-" if n is None else f"{n:,}"


def format_table(report: dict) -> str:
    meta, sizes, lite = report["metadata"], report["sizes"], report["tflite"]
    p = meta["parameters"]
    lines = [f"### {meta['run_name']} r{meta['replicate']} level {meta['level']} ({meta['branch']}): "
             f"sparsity {_fmt_pct(meta['sparsity']['overall'])} "
             f"({_fmt_pct(meta['sparsity']['without_embedding'])} without the embedding)", "",
             f"Valid / test accuracy (Keras, as trained): ticket {_fmt_pct(meta['valid_accuracy'])} / "
             f"{_fmt_pct(meta['test_accuracy'])}, dense {_fmt_pct(meta['dense']['valid_accuracy'])} / "
             f"{_fmt_pct(meta['dense']['test_accuracy'])}. Embedding: {p['embedding_share'] * 100:.1f}% of the "
             f"parameters, {p['embedding_share_of_nonzero'] * 100:.1f}% of the ticket's non-zero ones.", "",
             (f"TFLite checked on: {report['verification']}; latency: median of "
              f"{next((v['latency_runs'] for v in lite.values()), 0)} single-text invokes, "
              f"{report['num_threads']} thread(s)." if lite else "No TFLite conversion (--notflite)."), "",
             "| network | format | raw bytes | gzip -9 bytes | raw / dense | gzip / dense | agreement with Keras "
             "| accuracy (Keras on same input) | embedding share raw / gzip | latency ms | interpreter |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for role in ("dense", "ticket"):
        for fmt, label in (("saved_model", "SavedModel variables"), ("float", "TFLite float32"),
                           ("int8", "TFLite int8 (dynamic range)")):
            s = sizes.get(f"{role}/{fmt}")
            if s is None:
                continue
            d = sizes.get(f"dense/{fmt}") or (s if meta["level"] == 0 else None)  # level 0: the dense itself
            info = lite.get(f"{role}/{fmt}", {})
            emb = info.get("embedding_bytes")
            emb_share = f"{100 * emb['share_of_raw']:.0f}% / {100 * emb['share_of_gzip']:.0f}%" if emb else "-"
            ms = info.get("latency_ms_median")
            lines.append(
                f"| {role} | {label} | {_fmt_bytes(s['raw_bytes'])} | {_fmt_bytes(s['gzip_bytes'])} | "
                f"{_fmt_ratio(s['raw_bytes'], d and d['raw_bytes'])} | {_fmt_ratio(s['gzip_bytes'], d and d['gzip_bytes'])} | "
                f"{_fmt_pct(info.get('agreement'))} | "
                f"{_fmt_pct(info.get('accuracy'))} ({_fmt_pct(info.get('keras_accuracy_same_input'))}) | "
                f"{emb_share} | {'-' if ms is None else f'{ms:.3f}'} | "
                f"{info.get('resolver', '-')} |")
    return "\n".join(lines)


def _fmt_ratio(a, b):
    return "-" if not b else f"{a / b:.3f}"


# -------------------------------------------------------------------------------------------- CLI ---
def _define_flags(flags) -> None:
    flags.DEFINE_string("run_dir", "", "Run directory written by lth_tf.main (config.json, vocab.txt, r*/level_*).")
    flags.DEFINE_integer("level", None, "Level to export; default: the pruned level with the best validation "
                                        "accuracy (level 0 if none is finished).")
    flags.DEFINE_integer("replicate", 0, "Replicate to export.")
    flags.DEFINE_string("branch", "ticket", "Branch to export: " + ", ".join(BRANCHES) + ".")
    flags.DEFINE_string("export_dir", "saved_models", "Where the export directory is created.")
    flags.DEFINE_boolean("tflite", True, "Also convert to TFLite (float and int8) and verify.")
    flags.DEFINE_boolean("no_tflite", False, "Skip TFLite (the same as --notflite).")
    flags.DEFINE_boolean("dense", True, "Also export the dense network (level 0) for comparison.")
    flags.DEFINE_integer("tflite_length", 0, f"TFLite input length L; 0 = the run's --max_len, else "
                                             f"{DEFAULT_TFLITE_LENGTH}.")
    flags.DEFINE_integer("max_examples", DEFAULT_MAX_EXAMPLES, "Test texts used to verify the TFLite models.")
    flags.DEFINE_integer("latency_runs", DEFAULT_LATENCY_RUNS, "Invokes timed per TFLite model (median).")
    flags.DEFINE_integer("num_threads", 1, "Interpreter threads.")


def main(argv) -> int:
    from absl import flags, logging

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag (see --helpfull)")
    logging.set_verbosity(logging.WARNING)  # the converter's INFO lines drown the report
    tf.get_logger().setLevel("WARNING")
    export_run(FLAGS.run_dir, FLAGS.export_dir, replicate=FLAGS.replicate, level=FLAGS.level,
               branch=FLAGS.branch, tflite=FLAGS.tflite and not FLAGS.no_tflite, tflite_length=FLAGS.tflite_length,
               max_examples=FLAGS.max_examples, latency_runs=FLAGS.latency_runs, num_threads=FLAGS.num_threads,
               dense=FLAGS.dense, log=lambda m: print(m, flush=True))
    return 0


def _main_with_errors(argv) -> int:
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    from absl import app, flags

    _define_flags(flags)
    try:
        app.run(_main_with_errors)
    except flags.Error as e:  # pragma: no cover - absl reports bad flags itself
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
