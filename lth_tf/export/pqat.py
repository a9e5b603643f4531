"""Pruning-preserving quantization-aware training (PQAT) of a CNN ticket, and its full-integer int8 TFLite model.

    python -m lth_tf.export --run_dir=... --pqat [--pqat_epochs=1] [--pqat_learning_rate=1e-4]

What happens, per exported network (ticket, and the dense one for comparison):
1. A twin of the network is built that tfmot's 8-bit QAT can wrap, with the same weights and the same
   function: tfmot 0.8.1 has no 8-bit config for Conv1D (its registry entry is commented out, also in the
   prune-preserve registry), so each Conv1D(F, w) becomes the equivalent Conv2D(F, (1, w)) on the embedded
   text reshaped to [B, 1, T, E] (kernel reshaped, not changed; TFLite runs a Conv1D as that CONV_2D
   anyway); the embedding, which no registry covers, gets its own QuantizeConfig with tfmot's
   prune-preserving weight quantizer (int8 per tensor, symmetric); a binary network's single logit z becomes
   the two logits [0, z] and a softmax (= [1 - sigmoid(z), sigmoid(z)], exactly), so that the probabilities are
   computed inside the quantized network. The twin is checked against the Keras network before training.
2. `quantize_apply(..., Default8BitPrunePreserveQuantizeScheme())` (tfmot.experimental.combine): every
   Conv2D and Dense kernel (and the embedding, through its config) is fake-quantized as
   quantize(w * sparsity_mask), the mask being the weights' zeros when the wrapper is built, so pruned weights
   stay zero in the forward pass. Layers are annotated one by one (`quantize_annotate_layer`), not with
   `quantize_annotate_model`: that would also annotate the int32 id input (tfmot then fake-quantizes the ids)
   and the padding layer, which has no 8-bit config. The id path stays outside: input -> PadToMinLength ->
   an identity Reshape (unannotated, so nothing quantizes the ids) -> embedding.
3. A short fine-tune on the run's training split (--pqat_epochs, Adam at --pqat_learning_rate, the run's
   batch size and --max_len): gradients multiplied by the run's mask, and every masked variable multiplied by
   its mask after each step, so biases (which the quantizer does not mask) stay pruned too. Afterwards every
   pruned weight is checked to be exactly 0.
4. Conversion to a full-integer model (lth_tf.export.tflite.convert_full_int8): int8 weights and activations,
   int8 output, int32 token-id input; calibration on training texts for the ranges QAT does not carry. The
   file is run with LiteRT and checked: no float tensor, pruned weights stored as 0, accuracy and agreement
   with the float network on the test texts, latency.

The BiLSTM: no QAT. tfmot's 8-bit registry (0.8.1) has no config for LSTM cells or Bidirectional (the
LSTMCell entry is commented out as unverified), and quantize_apply refuses them; `lstm_qat_status` tries it
and records the refusal. Its best supported path is the dynamic-range int8 model every export writes
(`*_int8.tflite`): int8 weights (4x smaller) with float activations, run by the fused LSTM op's hybrid kernel.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from lth_tf.errors import UserError
from lth_tf.export.ticket import LoadedRun, LoadedTask
from lth_tf.keras import keras, tf
from lth_tf.nets.models import EMBEDDING_LAYER, OUTPUT_LAYER, PadToMinLength, probabilities

DEFAULT_EPOCHS = 1
DEFAULT_LEARNING_RATE = 1e-4
REPRESENTATIVE_TEXTS = 256  # training texts that calibrate the full-integer conversion


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def _prune_preserve_quantizer():
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import \
        prune_preserve_quantize_registry as registry

    return registry.PrunePreserveDefault8BitWeightsQuantizer()


def _embedding_config_class():
    """tfmot's QuantizeConfig for the embedding (defined on first use: tfmot is imported lazily)."""
    global _EmbeddingQuantizeConfig
    if _EmbeddingQuantizeConfig is not None:
        return _EmbeddingQuantizeConfig
    tfmot = _tfmot()

    class EmbeddingQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """The embedding matrix fake-quantized to int8 (per tensor, symmetric) with tfmot's prune-preserving
        weight quantizer; no activation or output quantizer: a lookup's output is on the matrix's grid."""

        def __init__(self):
            self.quantizer = _prune_preserve_quantizer()

        def get_weights_and_quantizers(self, layer):
            return [(layer.embeddings, self.quantizer)]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            layer.embeddings = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    _EmbeddingQuantizeConfig = EmbeddingQuantizeConfig
    return EmbeddingQuantizeConfig


_EmbeddingQuantizeConfig = None


# ------------------------------------------------------------------------------------------ support ---
def qat_unsupported(model: keras.Model) -> list[str]:
    """The layers of `model` with weights that tfmot's default 8-bit QAT registry has no config for."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import \
        default_8bit_quantize_registry as reg

    registry = reg.Default8BitQuantizeRegistry()
    return [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
            if layer.weights and not registry.supports(layer)]


def lstm_qat_status(model: keras.Model) -> dict:
    """Try PQAT on a BiLSTM network as on the CNN (every layer with weights annotated but the embedding,
    which the CNN's path handles itself): record whether tfmot accepts it, and what it says."""
    tfmot = _tfmot()
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    from lth_tf.nets.models import StudyEmbeddingInit

    def wrap(layer):
        if layer.weights and layer.name != EMBEDDING_LAYER:
            return annotate(layer.__class__.from_config(layer.get_config()))
        return layer

    unsupported = qat_unsupported(model)
    try:
        annotated = keras.models.clone_model(model, clone_function=wrap)
        with tfmot.quantization.keras.quantize_scope({"StudyEmbeddingInit": StudyEmbeddingInit}):
            tfmot.quantization.keras.quantize_apply(
                annotated, scheme=tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    except Exception as e:  # noqa: BLE001 - whatever tfmot raises is the answer recorded
        refusal = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
    else:  # pragma: no cover - not with tfmot 0.8.1
        refusal = None
    return {"supported": refusal is None and not unsupported,
            "layers_without_8bit_config": unsupported,
            "quantize_apply": refusal or "accepted",
            "reason": ("tfmot's 8-bit QAT has no config for LSTM cells or Bidirectional (its LSTMCell entry is "
                       "commented out as unverified, also in the prune-preserve registry), so quantize_apply "
                       "refuses the BiLSTM; a full-integer LSTM would also need calibrated ranges for the fused "
                       "op's internal gates, which QAT does not model"),
            "instead": ("dynamic-range int8 (`*_int8.tflite`): int8 weights, 4x smaller, float activations; "
                        "the fused UNIDIRECTIONAL_SEQUENCE_LSTM runs it with its hybrid kernel; verified like "
                        "every TFLite model here. float16 weights would only halve the size and run as float32 "
                        "on a CPU")}


# --------------------------------------------------------------------------------------------- twin ---
@dataclasses.dataclass
class Twin:
    model: keras.Model  # the quantization-aware model (after quantize_apply): ids -> probabilities
    variables: dict[str, tf.Variable]  # stable name -> its variable in `model`, in the twin's layout
    train_masks: dict[str, np.ndarray]  # stable name -> mask in the twin's layout (False: kept at 0)
    pruned_masks: dict[str, np.ndarray]  # the same, False only where the run's mask prunes
    twin_max_abs_diff: float  # the float twin vs the Keras network before quantize_apply


def _twin_layout(name: str, value: np.ndarray, num_classes: int) -> np.ndarray:
    if name.startswith("conv") and name.endswith("/kernel"):
        return value.reshape((1,) + value.shape)  # Conv1D (w, E, F) -> Conv2D (1, w, E, F)
    if name.startswith(f"{OUTPUT_LAYER}/") and num_classes == 2:
        return np.concatenate([np.zeros_like(value), value], axis=-1)  # z -> [0, z]
    return value


def _build_float_twin(run: LoadedRun, task: LoadedTask) -> tuple[keras.Model, dict]:
    """The twin with every layer annotated as described in the module docstring (not yet quantize_apply'd),
    and {stable name: Keras layer, weight} to assign."""
    annotate = _tfmot().quantization.keras.quantize_annotate_layer
    cfg = run.cfg.model
    emb_matrix = task.weights[f"{EMBEDDING_LAYER}/embeddings"]
    vocab_size, dim = emb_matrix.shape
    widths = cfg.widths()
    ids = keras.Input(shape=(None,), dtype=tf.int32, name="token_ids")
    x = PadToMinLength(max(widths), name="pad_to_min_length")(ids)
    x = keras.layers.Reshape((-1,), name="ids")(x)  # identity; unannotated: nothing fake-quantizes the ids
    embedding = keras.layers.Embedding(vocab_size, dim, name=EMBEDDING_LAYER)
    x = annotate(embedding, _embedding_config_class()())(x)
    x = annotate(keras.layers.Reshape((1, -1, dim), name="as_image"))(x)
    convs, pooled = {}, []
    for w in widths:
        conv = keras.layers.Conv2D(cfg.filters, (1, w), activation="relu", name=f"conv{w}")
        convs[w] = conv
        pooled.append(annotate(keras.layers.GlobalMaxPooling2D(name=f"maxpool{w}"))(annotate(conv)(x)))
    x = annotate(keras.layers.Concatenate(name="concat"))(pooled) if len(pooled) > 1 else pooled[0]
    x = annotate(keras.layers.Dropout(cfg.dropout, seed=1, name="dropout"))(x)
    output = keras.layers.Dense(2 if run.num_classes == 2 else run.num_classes, name=OUTPUT_LAYER)
    x = annotate(output)(x)
    probs = annotate(keras.layers.Softmax(name="probabilities"))(x)
    model = keras.Model(ids, probs, name="cnn_pqat")
    targets = {f"{EMBEDDING_LAYER}/embeddings": embedding.embeddings,
               f"{OUTPUT_LAYER}/kernel": output.kernel, f"{OUTPUT_LAYER}/bias": output.bias}
    for w, conv in convs.items():
        targets[f"conv{w}/kernel"], targets[f"conv{w}/bias"] = conv.kernel, conv.bias
    return model, targets


def _stable_variables(model: keras.Model) -> dict[str, tf.Variable]:
    """{stable name: variable} of a quantize_apply'd twin (its layers wrapped, the variables inside)."""
    tfmot = _tfmot()
    out = {}
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, tfmot.quantization.keras.QuantizeWrapper) else layer
        # The wrapper's list: the inner layer no longer tracks a weight that its quantize config replaced.
        for var in layer.trainable_weights:
            out[f"{inner.name}/{var.name.split(':')[0].split('/')[-1]}"] = var
    return out


def build_twin(run: LoadedRun, task: LoadedTask, check_ids: np.ndarray | None = None) -> Twin:
    """The quantization-aware twin of a CNN task, its weights the task's, checked against the Keras network
    on `check_ids` (rows of right-padded ids) before quantization."""
    if run.cfg.model.model != "cnn":
        raise UserError(f"PQAT is for the CNN; {run.cfg.model.model}: see lth_tf.export.pqat.lstm_qat_status")
    float_twin, targets = _build_float_twin(run, task)
    if set(targets) != set(task.weights):
        raise UserError(f"the PQAT twin has weights {sorted(targets)}, the network {sorted(task.weights)}")
    for name, var in targets.items():
        var.assign(_twin_layout(name, task.weights[name], run.num_classes))
    diff = 0.0
    if check_ids is not None and len(check_ids):
        from lth_tf.export.serving import text_lengths
        for row in check_ids:
            k = max(1, int(text_lengths(tf.constant(row[None]))[0]))
            want = probabilities(task.model(row[None, :k], training=False), run.num_classes).numpy()
            got = float_twin(row[None, :k], training=False).numpy()
            diff = max(diff, float(np.abs(want - got).max()))
    tfmot = _tfmot()
    config_class = _embedding_config_class()
    with tfmot.quantization.keras.quantize_scope({"PadToMinLength": PadToMinLength,
                                                  config_class.__name__: config_class}):
        qat = tfmot.quantization.keras.quantize_apply(
            float_twin, scheme=tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    variables = _stable_variables(qat)
    missing = sorted(set(targets) - set(variables))
    if missing:
        raise RuntimeError(f"quantize_apply lost the variables {missing}")
    variables = {name: variables[name] for name in targets}
    train_masks, pruned_masks = {}, {}
    for name, var in variables.items():
        run_mask = task.masks.get(name, np.ones(task.weights[name].shape, bool))
        pruned = _twin_layout(name, run_mask.astype(np.float32), run.num_classes).astype(bool)
        if name.startswith(f"{OUTPUT_LAYER}/") and run.num_classes == 2:
            pruned_masks[name] = np.concatenate([np.ones_like(run_mask), run_mask], axis=-1)  # [0, z]: 0 is no pruning
        else:
            pruned_masks[name] = pruned
        train_masks[name] = pruned  # the structural 0 of [0, z] stays 0 too
        if tuple(var.shape) != pruned.shape:
            raise RuntimeError(f"{name}: twin variable {tuple(var.shape)}, mask {pruned.shape}")
    return Twin(qat, variables, train_masks, pruned_masks, diff)


# ---------------------------------------------------------------------------------------- fine-tune ---
def fine_tune(twin: Twin, batches: Callable[[int], object], epochs: int, learning_rate: float,
              log: Callable[[str], None], label: str = "") -> list[dict]:
    """`epochs` passes over `batches(epoch)` (an iterable of (ids, labels)), masked as described in the module
    docstring. Returns per-epoch {loss, batches, seconds}."""
    model = twin.model
    optimizer = keras.optimizers.Adam(learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    trainable = model.trainable_variables
    masks = {id(var): tf.constant(twin.train_masks[name].astype(np.float32)) for name, var in twin.variables.items()
             if not twin.train_masks[name].all()}
    masked = [(twin.variables[name], tf.constant(m.astype(np.float32)))
              for name, m in twin.train_masks.items() if not m.all()]

    @tf.function(reduce_retracing=True)
    def step(ids, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(ids, training=True))
        grads = tape.gradient(loss, trainable)
        out = []
        for g, v in zip(grads, trainable):
            m = masks.get(id(v))
            if g is not None and m is not None:
                g = tf.IndexedSlices(g.values * tf.gather(m, g.indices), g.indices, g.dense_shape) \
                    if isinstance(g, tf.IndexedSlices) else g * m
            out.append(g)
        optimizer.apply_gradients([(g, v) for g, v in zip(out, trainable) if g is not None])
        for v, m in masked:
            v.assign(v * m)
        return loss

    @tf.function(reduce_retracing=True)
    def refresh(ids):
        model(ids, training=True)

    history = []
    last = None
    for epoch in range(epochs):
        started, total, n = time.perf_counter(), 0.0, 0
        for ids, labels in batches(epoch):
            total += float(step(ids, labels))
            n, last = n + 1, ids
        history.append({"epoch": epoch + 1, "loss": total / max(1, n), "batches": n,
                        "seconds": time.perf_counter() - started})
        log(f"export: {label}PQAT fine-tune epoch {epoch + 1}/{epochs}: mean training loss "
            f"{history[-1]['loss']:.4f} over {n} batches ({history[-1]['seconds']:.0f}s)")
    if last is not None:
        # The weights' quantization ranges are those of the weights before the last update (tfmot's
        # LastValueQuantizer reads them in each training call): one more training-mode call, without an update,
        # sets them from the final weights, so that the int8 weights are the final weights rounded, not clipped.
        refresh(last)
    return history


def pruned_still_zero(twin: Twin) -> dict:
    """After fine-tuning: the pruned weights of the float variables (exactly 0 expected)."""
    pruned = nonzero = 0
    by_tensor = {}
    for name, var in twin.variables.items():
        mask = twin.pruned_masks[name]
        values = var.numpy()
        bad = int(np.count_nonzero(values[~mask]))
        pruned += int((~mask).sum())
        nonzero += bad
        if bad:
            by_tensor[name] = bad
    return {"pruned": pruned, "nonzero_after_fine_tune": nonzero, "all_zero": nonzero == 0,
            "nonzero_by_tensor": by_tensor}


def twin_probabilities(twin: Twin, ids: np.ndarray, lengths: np.ndarray, batch: int = 128) -> np.ndarray:
    """The quantization-aware Keras model's probabilities for each text alone (fake-quantized, float)."""
    keep = np.maximum(lengths, 1)
    out = None
    for n in np.unique(keep):
        idx = np.flatnonzero(keep == n)
        for start in range(0, len(idx), batch):
            chunk = idx[start:start + batch]
            p = twin.model(tf.constant(ids[chunk, :int(n)]), training=False).numpy()
            if out is None:
                out = np.zeros((len(keep), p.shape[1]), np.float32)
            out[chunk] = p
    return out if out is not None else np.zeros((0, 0), np.float32)


def weights_in_twin_layout(twin: Twin) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{stable name: (values, pruned mask)} of the fine-tuned twin, for lth_tf.export.tflite.pruned_zeros."""
    return {name: (var.numpy(), twin.pruned_masks[name]) for name, var in twin.variables.items()}


def representative_dataset(split, length: int, count: int = REPRESENTATIVE_TEXTS):
    """A callable giving [ids [1, length]] for the first `count` texts of `split` (right-padded, truncated)."""
    rows, n = [], min(count, len(split))
    for a, b in zip(split.offsets[:n], split.offsets[1:n + 1]):
        row = np.zeros((1, length), np.int32)
        k = min(int(b - a), length)
        row[0, :k] = split.token_ids[a:a + k]
        rows.append(row)

    def generate():
        for row in rows:
            yield [row]

    return generate
