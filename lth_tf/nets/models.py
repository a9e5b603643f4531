"""The study's two networks in Keras 2, with the study's initialisation.

Both take int32 token ids [batch, time] (0 = padding, 1 = unknown) and return logits: one for a binary
task (sigmoid cross-entropy), one per class otherwise (softmax cross-entropy).

Initialisation ('study'): PyTorch's untruncated Xavier normal with PyTorch's fan conventions, orthogonal
recurrent kernels, every bias zero (the LSTM forget gate too), embedding N(0, 1) with the padding and
unknown rows zero. PyTorch's `Conv2d(1, F, (w, E))` counts fan_in = w*E and fan_out = F*w*E, so a conv
filter's std is sqrt(2 / (w*E*(F+1))) ~ 0.008 for w=3, E=F=100, about 7x smaller than Keras' default.

Precision ('float32' or 'bfloat16', `--precision`): 'bfloat16' builds the model under Keras' `mixed_bfloat16`
policy: every layer computes in bfloat16 while its weights stay float32 variables (read as bfloat16 inside
the layer's call; their gradients are float32), and the output layer computes in float32, so the logits and
the loss are float32. The policy is set for the build only (`precision_policy`): layers keep the policy they
were built with, and the global policy is restored afterwards. The weights for a seed do not depend on it.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from lth_tf.config import ModelConfig
from lth_tf.errors import UserError
from lth_tf.keras import keras, tf
from lth_tf.nets import EMBEDDING_LAYER, OUTPUT_LAYER, PAD_ID, UNK_ID  # noqa: F401 (re-exported)

# --precision -> the Keras dtype policy its layers are built under.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@contextlib.contextmanager
def precision_policy(precision: str):
    """Layers built inside compute in `precision` (see the module docstring); the previous global policy is
    restored on the way out, so nothing built afterwards in this process is affected."""
    if precision not in POLICIES:
        raise UserError(f"--precision={precision!r}: choose from {', '.join(POLICIES)}")
    previous = keras.mixed_precision.global_policy()
    if POLICIES[precision] == previous.name:
        yield
        return
    keras.mixed_precision.set_global_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _output_dtype() -> dict:
    """The output layer computes in float32 under a mixed policy: float32 logits, float32 loss."""
    policy = keras.mixed_precision.global_policy()
    return {"dtype": "float32"} if policy.compute_dtype != policy.variable_dtype else {}


def _normal(std: float, seed: int) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=std, seed=seed)


def xavier_std(fan_in: int, fan_out: int) -> float:
    return math.sqrt(2.0 / (fan_in + fan_out))


class StudyEmbeddingInit(keras.initializers.Initializer):
    """N(0, 1) rows, with the padding and unknown rows zero (torchtext's `<pad>`/`<unk>` convention)."""

    def __init__(self, seed: int, zero_rows: tuple[int, ...] = (PAD_ID, UNK_ID)):
        self.seed, self.zero_rows = seed, tuple(zero_rows)

    def __call__(self, shape, dtype=None, **kwargs):
        values = tf.random.stateless_normal(shape, seed=[self.seed, 0], dtype=dtype or tf.float32)
        keep = np.ones((shape[0], 1), np.float32)
        keep[list(self.zero_rows)] = 0.0
        return values * tf.constant(keep, dtype=values.dtype)

    def get_config(self):
        return {"seed": self.seed, "zero_rows": self.zero_rows}


class PadToMinLength(keras.layers.Layer):
    """Right-pads the token ids to at least the widest filter, so a batch of very short texts still
    gives every convolution one output position (padding is id 0, as in the rest of the batch)."""

    def __init__(self, min_length: int, **kwargs):
        super().__init__(**kwargs)
        self.min_length = min_length

    def call(self, ids):
        missing = tf.maximum(0, self.min_length - tf.shape(ids)[1])
        return tf.pad(ids, [[0, 0], [0, missing]])

    def get_config(self):
        return {**super().get_config(), "min_length": self.min_length}


class _Seeds:
    """Hands out a distinct, reproducible seed to every initializer of one model."""

    def __init__(self, seed: int, stateful_dropout: bool = False):
        self.base, self.count = (seed % 2**20) * 1000, 0
        self.stateful_dropout = stateful_dropout

    def __call__(self) -> int:
        self.count += 1
        return self.base + self.count


def _dropout(cfg: ModelConfig, seeds: _Seeds, name: str) -> keras.layers.Dropout:
    """Stateful dropout keeps its random state in a tf.random.Generator that training can reseed per epoch
    (lth_tf.training.seed_dropout); the default (TF1-style seeded ops) cannot be reseeded or checkpointed."""
    return keras.layers.Dropout(cfg.dropout, seed=seeds(), name=name,
                                rng_type="stateful" if seeds.stateful_dropout else None)


def _embedding(cfg: ModelConfig, vocab_size: int, seeds: _Seeds, embedding_matrix, mask_zero: bool):
    if embedding_matrix is not None:
        matrix = np.asarray(embedding_matrix, np.float32)
        if matrix.shape[0] != vocab_size:
            raise UserError(f"embedding matrix has {matrix.shape[0]} rows for a vocabulary of {vocab_size}")
        init, dim = keras.initializers.Constant(matrix), matrix.shape[1]
    else:
        dim = cfg.embedding_dim
        init = StudyEmbeddingInit(seeds()) if cfg.init == "study" else keras.initializers.RandomUniform(
            -0.05, 0.05, seed=seeds())
    return keras.layers.Embedding(vocab_size, dim, embeddings_initializer=init, mask_zero=mask_zero,
                                  name=EMBEDDING_LAYER), dim


def _dense_kernel_init(cfg: ModelConfig, fan_in: int, fan_out: int, seeds: _Seeds):
    if cfg.init == "study":
        return _normal(xavier_std(fan_in, fan_out), seeds())
    return keras.initializers.GlorotUniform(seed=seeds())


def output_units(num_classes: int) -> int:
    return 1 if num_classes == 2 else num_classes


def build_cnn(cfg: ModelConfig, vocab_size: int, num_classes: int, seed: int,
              embedding_matrix=None, stateful_dropout: bool = False) -> keras.Model:
    seeds = _Seeds(seed, stateful_dropout)
    widths = cfg.widths()
    ids = keras.Input(shape=(None,), dtype=tf.int32, name="token_ids")
    embedding, dim = _embedding(cfg, vocab_size, seeds, embedding_matrix, mask_zero=False)
    x = embedding(PadToMinLength(max(widths), name="pad_to_min_length")(ids))
    pooled = []
    for w in widths:
        if cfg.init == "study":
            kinit = _normal(xavier_std(w * dim, cfg.filters * w * dim), seeds())
        else:
            kinit = keras.initializers.GlorotUniform(seed=seeds())
        conv = keras.layers.Conv1D(cfg.filters, w, activation="relu", kernel_initializer=kinit,
                                   bias_initializer="zeros", name=f"conv{w}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"maxpool{w}")(conv))
    x = keras.layers.Concatenate(name="concat")(pooled) if len(pooled) > 1 else pooled[0]
    x = _dropout(cfg, seeds, "dropout")(x)
    units = output_units(num_classes)
    logits = keras.layers.Dense(units, kernel_initializer=_dense_kernel_init(cfg, cfg.filters * len(widths),
                                                                             units, seeds),
                                bias_initializer="zeros", name=OUTPUT_LAYER, **_output_dtype())(x)
    return keras.Model(ids, logits, name="cnn")


def _lstm(cfg: ModelConfig, input_dim: int, seeds: _Seeds, return_sequences: bool, go_backwards: bool,
          name: str, layer_cls=keras.layers.LSTM) -> keras.layers.LSTM:
    if cfg.init == "study":
        kernel_init = _normal(xavier_std(input_dim, 4 * cfg.hidden), seeds())
        extra = dict(recurrent_initializer=keras.initializers.Orthogonal(seed=seeds()),
                     bias_initializer="zeros", unit_forget_bias=False)
    else:
        kernel_init = keras.initializers.GlorotUniform(seed=seeds())
        extra = dict(recurrent_initializer=keras.initializers.Orthogonal(seed=seeds()))
    # Defaults otherwise (tanh, sigmoid, no recurrent dropout, not unrolled): the conditions under which
    # Keras runs the cuDNN kernel on a GPU, right-padded masks included.
    return layer_cls(cfg.hidden, return_sequences=return_sequences, go_backwards=go_backwards,
                     kernel_initializer=kernel_init, name=name, **extra)


def build_lstm(cfg: ModelConfig, vocab_size: int, num_classes: int, seed: int,
               embedding_matrix=None, fast_lstm: bool = False, stateful_dropout: bool = False) -> keras.Model:
    """fast_lstm: lth_tf.nets.fast_lstm.FastLSTM layers (same weights, names and outputs; faster training on a
    CPU, Keras' cuDNN path on a GPU). Leave it off for exports: the TFLite converter fuses only Keras' LSTM."""
    if fast_lstm:
        from lth_tf.nets.fast_lstm import FastLSTM as layer_cls
    else:
        layer_cls = keras.layers.LSTM
    seeds = _Seeds(seed, stateful_dropout)
    ids = keras.Input(shape=(None,), dtype=tf.int32, name="token_ids")
    # mask_zero: every LSTM sees each text at its true length, as the study's packed sequences did.
    embedding, dim = _embedding(cfg, vocab_size, seeds, embedding_matrix, mask_zero=True)
    x = _dropout(cfg, seeds, "embedding_dropout")(embedding(ids))
    input_dim = dim
    for i in range(1, cfg.lstm_layers + 1):
        last = i == cfg.lstm_layers
        # An explicit backward layer gets its own initializer seeds (Bidirectional would otherwise copy the
        # forward layer's config, seeds included, and start both directions from the same weights).
        forward = _lstm(cfg, input_dim, seeds, not last, False, f"lstm{i}_forward", layer_cls)
        backward = _lstm(cfg, input_dim, seeds, not last, True, f"lstm{i}_backward", layer_cls)
        x = keras.layers.Bidirectional(forward, backward_layer=backward, merge_mode="concat",
                                       name=f"bilstm{i}")(x)
        if not last:
            x = _dropout(cfg, seeds, f"lstm{i}_dropout")(x)
        input_dim = 2 * cfg.hidden
    x = _dropout(cfg, seeds, "dropout")(x)
    units = output_units(num_classes)
    logits = keras.layers.Dense(units, kernel_initializer=_dense_kernel_init(cfg, 2 * cfg.hidden, units, seeds),
                                bias_initializer="zeros", name=OUTPUT_LAYER, **_output_dtype())(x)
    return keras.Model(ids, logits, name="lstm")


def build_model(cfg: ModelConfig, vocab_size: int, num_classes: int, seed: int,
                embedding_matrix=None, fast_lstm: bool = False, stateful_dropout: bool = False,
                precision: str = "float32") -> keras.Model:
    """The network for `cfg.model`, its weights a pure function of `seed` (and the GloVe matrix).
    fast_lstm: see build_lstm (ignored for the CNN); stateful_dropout: see _dropout; precision: 'float32' or
    'bfloat16' (mixed: bfloat16 compute, float32 weights and logits; see the module docstring)."""
    if num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {num_classes}")
    builders = {"cnn": build_cnn, "lstm": build_lstm}
    if cfg.model not in builders:
        raise UserError(f"--model={cfg.model!r} is not one of: {', '.join(builders)}")
    with precision_policy(precision):
        if cfg.model == "lstm":
            return build_lstm(cfg, vocab_size, num_classes, seed, embedding_matrix, fast_lstm=fast_lstm,
                              stateful_dropout=stateful_dropout)
        return build_cnn(cfg, vocab_size, num_classes, seed, embedding_matrix, stateful_dropout=stateful_dropout)


def loss_fn(num_classes: int):
    if num_classes == 2:
        return keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")


def predictions(logits: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Predicted class ids from logits."""
    if num_classes == 2:
        return tf.cast(logits[:, 0] > 0, tf.int32)
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def probabilities(logits: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Class probabilities [batch, num_classes] from logits."""
    if num_classes == 2:
        p = tf.sigmoid(logits[:, 0])
        return tf.stack([1.0 - p, p], axis=-1)
    return tf.nn.softmax(logits, axis=-1)
