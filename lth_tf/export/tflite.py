"""TFLite: the entry point converted (ids [1, L] -> probabilities), the conversion, the interpreter that runs
a converted model (with the XNNPack fallback), and the check of its ops."""
from __future__ import annotations

import numpy as np

from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID, probabilities
from lth_tf.sparsity import registry

RESOLVER_DEFAULT = "default (XNNPack delegate)"
RESOLVER_FALLBACK = "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
FUSED_LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM")


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
