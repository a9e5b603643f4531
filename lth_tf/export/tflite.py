"""TFLite: the entry point converted (ids [1, L] -> probabilities), the conversions (float, dynamic-range int8,
full-integer int8), the interpreter that runs a converted model (LiteRT, with the XNNPack fallback), and the
checks of its ops and tensors.

The interpreter is LiteRT's (`ai_edge_litert.interpreter.Interpreter`, the `ai-edge-litert` package), the
successor of `tf.lite.Interpreter`. Only if LiteRT cannot be imported is `tf.lite.Interpreter` used, and
that is said once (`interpreter_note()`, logged by the export). `tf.lite.Interpreter` warns on every
construction that it is deprecated (one warning per model verified; the converter's calibration builds one
too when given dict samples): that warning is silenced here, where it says nothing actionable.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterable

import numpy as np

from lth_tf.keras import keras, tf
from lth_tf.nets.models import EMBEDDING_LAYER, PAD_ID, probabilities
from lth_tf.sparsity import registry

RESOLVER_DEFAULT = "default (XNNPack delegate)"
RESOLVER_FALLBACK = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
FUSED_LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM")
_DEPRECATION = r"\s*Warning: tf\.lite\.Interpreter is deprecated"


@contextlib.contextmanager
def quiet_tflite_deprecation():
    """Within the block, tf.lite.Interpreter's deprecation warning is not shown (other warnings are)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION)
        yield


class LiteModule(tf.Module):
    """The TFLite entry point: ids [1, L] -> probabilities [1, C], reading the ids up to the last non-zero.

    `model` returns logits (the study's networks), or probabilities if `outputs_probabilities` (the PQAT
    network, lth_tf.export.pqat, ends with its softmax). `variables` are tracked for the converter (default:
    the network's prunable weights by stable name)."""

    def __init__(self, model: keras.Model, num_classes: int, length: int, outputs_probabilities: bool = False,
                 variables: Iterable[tf.Variable] | None = None):
        super().__init__(name="lth_tf_tflite")
        if variables is None:
            self.named_weights = dict(registry.all_weights(model))
        else:
            self.tracked_variables = list(variables)

        # A network that masks padding (the LSTM) answers an empty text from its initial state; fed the single
        # padding id that the slice below keeps, with the mask off, it would read that id's embedding instead.
        # Its answer for an empty text is computed here, with the mask on, and used when no id is non-zero.
        empty = None
        if _masks_padding(model):
            out = model(tf.zeros([1, 1], tf.int32), training=False)
            empty = (out if outputs_probabilities else probabilities(out, num_classes)).numpy()

        def serve(token_ids):
            positions = tf.range(1, length + 1, dtype=tf.int32)
            real = tf.reduce_max(tf.where(token_ids[0] != PAD_ID, positions, 0))
            out = model(token_ids[:, :tf.maximum(real, 1)], training=False)
            out = out if outputs_probabilities else probabilities(out, num_classes)
            if empty is not None:
                out = tf.where(real > 0, out, tf.constant(empty))
            return {"probabilities": out}

        self.serve = tf.function(serve, input_signature=[tf.TensorSpec([1, length], tf.int32, name="token_ids")])


def _masks_padding(model: keras.Model) -> bool:
    try:
        return bool(getattr(model.get_layer(EMBEDDING_LAYER), "mask_zero", False))
    except ValueError:  # no layer of that name (a quantization-aware twin): it does not mask
        return False


def _converter(module: LiteModule):
    return tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)


def convert_tflite(module: LiteModule, int8: bool) -> bytes:
    converter = _converter(module)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    with quiet_tflite_deprecation():
        return converter.convert()


def convert_full_int8(module: LiteModule, representative: Callable[[], Iterable[list[np.ndarray]]]) -> bytes:
    """Full-integer int8: int8 weights and activations, int8 output (read it with the output's scale and zero
    point), every op an integer builtin (TFLITE_BUILTINS_INT8: the conversion fails rather than leave a float
    op). The input stays int32 token ids: `inference_input_type` only retypes float inputs, and an embedding
    lookup takes integer ids. `representative`: input batches ([ids [1, L]]) that calibrate the ranges the
    quantization-aware model does not carry (fake-quant ranges, where present, are kept)."""
    converter = _converter(module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_output_type = tf.int8
    with quiet_tflite_deprecation():
        return converter.convert()


_NOTE: list[str] = []  # why tf.lite.Interpreter is used, once known


def _litert():
    """(Interpreter class, OpResolverType, package name): LiteRT's, else tf.lite's (deprecated)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        return Interpreter, OpResolverType, "ai_edge_litert"
    except ImportError as e:
        if not _NOTE:
            _NOTE.append(f"ai-edge-litert is not usable here ({e}): the TFLite models are verified with "
                         f"tf.lite.Interpreter, which is deprecated (pip install ai-edge-litert)")
        return tf.lite.Interpreter, tf.lite.experimental.OpResolverType, "tf.lite"


def interpreter_note() -> str:
    """Which interpreter verifies the TFLite models, in one sentence (said once by the export)."""
    _, _, package = _litert()
    if package == "ai_edge_litert":
        try:
            from importlib.metadata import version
            v = version("ai-edge-litert")
        except Exception:  # noqa: BLE001 - the version is informative only
            v = "?"
        return f"TFLite models verified with LiteRT (ai_edge_litert {v})"
    return _NOTE[0] if _NOTE else f"TFLite models verified with {package}"


class LiteRunner:
    """One TFLite model in an interpreter. Tries the default op resolver (with the XNNPack delegate) first;
    if loading or a first invoke fails (as sparse int8 models can), retries without default delegates.
    `predict` returns probabilities as floats; an int8 output is dequantized with its scale and zero point."""

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
        with quiet_tflite_deprecation():
            it = interpreter_cls(model_content=content, num_threads=num_threads, **kwargs)
        it.allocate_tensors()
        inp, out = it.get_input_details(), it.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ValueError(f"expected one input and one output, got {len(inp)} and {len(out)}")
        self.it, self.input, self.output = it, inp[0], out[0]
        self.length = int(self.input["shape"][1])
        scale, zero = self.output.get("quantization", (0.0, 0))
        self.output_scale = (float(scale), int(zero)) if np.issubdtype(self.output["dtype"], np.integer) else None
        self.predict(np.zeros(self.length, np.int32))  # a delegate may fail only when first run

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Probabilities [C] of one text: ids [L] int32, right-padded with 0."""
        self.it.reset_all_variables()  # the fused LSTM's state lives in variable tensors
        self.it.set_tensor(self.input["index"], ids.reshape(1, -1).astype(self.input["dtype"], copy=False))
        self.it.invoke()
        out = self.it.get_tensor(self.output["index"])[0]
        if self.output_scale is not None:
            scale, zero = self.output_scale
            return ((out.astype(np.float32) - zero) * scale).astype(np.float32)
        return out.copy()

    def ops(self) -> list[str] | None:
        try:
            return sorted({d["op_name"] for d in self.it._get_ops_details()})
        except Exception:  # noqa: BLE001 - a private API; the op list is informative only
            return None

    def tensor_dtypes(self) -> dict[str, list[str]]:
        """{dtype name: [tensor names]} over every tensor of the model."""
        out: dict[str, list[str]] = {}
        for d in self.it.get_tensor_details():
            out.setdefault(np.dtype(d["dtype"]).name, []).append(d["name"])
        return out

    def constants(self) -> list[tuple[dict, np.ndarray]]:
        """(details, stored values) of every tensor whose values can be read (the weights among them)."""
        found = []
        for d in self.it.get_tensor_details():
            try:
                found.append((d, self.it.get_tensor(d["index"])))
            except ValueError:
                continue
        return found

    def find_tensor(self, shape: tuple) -> np.ndarray | None:
        """The stored values of a constant of this shape (int8 preferred, for quantized models)."""
        candidates = [values for d, values in self.constants() if tuple(d["shape"]) == tuple(shape)]
        candidates.sort(key=lambda a: a.dtype.itemsize)
        return candidates[0] if candidates else None


def dequantize(details: dict, values: np.ndarray) -> np.ndarray:
    """Float values of a stored tensor (itself if it is not quantized; per-tensor or per-axis scales)."""
    q = details.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), np.float64)
    if not scales.size or not np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float64)
    zeros = np.asarray(q.get("zero_points", np.zeros_like(scales)), np.float64)
    if scales.size == 1:
        return (values.astype(np.float64) - zeros[0]) * scales[0]
    shape = [1] * values.ndim
    shape[int(q.get("quantized_dimension", 0))] = -1
    return (values.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)


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


def check_full_integer(runner: LiteRunner) -> dict:
    """What makes a model full-integer: no float tensor anywhere (weights, activations, input, output); the
    dtypes found, with how many tensors of each."""
    dtypes = runner.tensor_dtypes()
    floats = sorted(name for dt, names in dtypes.items() if dt.startswith("float") for name in names)
    return {"tensor_dtypes": {dt: len(names) for dt, names in sorted(dtypes.items())},
            "float_tensors": floats, "full_integer": not floats,
            "input_dtype": np.dtype(runner.input["dtype"]).name, "output_dtype": np.dtype(runner.output["dtype"]).name}


def _squeezed(a: np.ndarray) -> np.ndarray:
    return a.reshape([n for n in a.shape if n != 1])


def _find_weight(constants: list[tuple[dict, np.ndarray]], array: np.ndarray):
    """The stored tensor holding `array` (a Keras weight) in a converted model, and the axis order that maps
    the weight onto it: TFLite stores kernels in its own layouts (fully-connected [out, in], convolutions
    [out, 1, width, in]), so every order of the non-unit axes is tried, and the values decide (float: equal;
    quantized: within half a quantization step, for 95% of the entries). None if not found."""
    import itertools

    a = _squeezed(array.astype(np.float64))
    best = None
    for d, values in constants:
        if values.size != array.size:
            continue
        v = _squeezed(values)
        if v.ndim != a.ndim:
            continue
        for perm in itertools.permutations(range(a.ndim)):
            t = np.transpose(a, perm)
            if t.shape != v.shape:
                continue
            deq = _squeezed(dequantize(d, values))
            q = d.get("quantization_parameters") or {}
            scales = np.asarray(q.get("scales", []), np.float64)
            quantized = bool(scales.size) and np.issubdtype(values.dtype, np.integer)
            tol = 0.51 * float(scales.max()) + 1e-6 if quantized else 1e-6
            close = float(np.mean(np.abs(deq - t) <= tol))
            if close >= (0.95 if quantized else 1.0) and (best is None or close > best[2]):
                best = (d, perm, close, values, deq)
    return best


def pruned_zeros(runner: LiteRunner, weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """For each weight name -> (values in the Keras layout, mask with False where pruned): whether the
    converted model stores exactly zero wherever the mask prunes. `fraction_kept` = pruned weights stored as
    0 / pruned weights, over the tensors found; `zero_fraction` = all zeros stored / all entries of them (a
    kept weight can also quantize to 0)."""
    constants = runner.constants()
    pruned = kept = zeros = total = 0
    tensors, missing = {}, []
    for name, (array, mask) in weights.items():
        array, mask = np.asarray(array), np.asarray(mask, bool)
        parts = [(array, mask)]
        found = [_find_weight(constants, array)]
        if found[0] is None and array.shape and array.shape[-1] % 4 == 0:
            # An LSTM's kernels and bias hold its four gates side by side (i, f, c, o); the fused TFLite op
            # stores each gate's block as its own tensor.
            parts = list(zip(np.split(array, 4, axis=-1), np.split(mask, 4, axis=-1)))
            found = [_find_weight(constants, a) for a, _ in parts]
        if any(f is None for f in found):
            missing.append(name)
            continue
        entry = {"stored_as": [], "dtype": None, "pruned": 0, "pruned_stored_as_zero": 0, "zeros": 0, "size": 0}
        for (_, part_mask), (d, perm, _, values, deq) in zip(parts, found):
            m = np.transpose(_squeezed(part_mask), perm)
            entry["stored_as"].append(d["name"])
            entry["dtype"] = np.dtype(values.dtype).name
            entry["pruned"] += int((~m).sum())
            entry["pruned_stored_as_zero"] += int(np.sum(deq[~m] == 0))
            entry["zeros"] += int(np.sum(deq == 0))
            entry["size"] += int(deq.size)
        tensors[name] = entry
        pruned, kept = pruned + entry["pruned"], kept + entry["pruned_stored_as_zero"]
        zeros, total = zeros + entry["zeros"], total + entry["size"]
    return {"pruned": pruned, "pruned_stored_as_zero": kept, "fraction_kept": kept / pruned if pruned else None,
            "zero_fraction": zeros / total if total else None, "tensors": tensors, "not_found": missing}
