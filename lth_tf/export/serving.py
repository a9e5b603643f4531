"""What an exported network computes for a batch of right-padded token ids: for every text, what the Keras
network computes for that text alone (its ids up to the last non-zero one, no extra padding), whatever else
is in the batch.

Why this is needed: the CNN (lth_tf.nets.models.build_cnn) has no padding mask. Padded in a batch, a text
gets convolution windows it does not have alone: over its padding (id 0, whose embedding row is zero at the
study's initialisation but need not stay so, and is random in the tests' networks) and straddling its last
tokens and the padding. Convolution + bias + ReLU turns each into a non-negative feature,
ReLU(bias + the real tokens it covers), that can win the global max-pool. So in Keras the probability of a
text depends on how far its batch pads it (an IMDb review: 0.652 in a batch vs 0.639 alone). Training and evaluation keep doing that (it is
how the study's numbers were made, and not the export's to change); the exported serving graph does not:
it computes the convolutions on the padded batch, then leaves out of each max-pool the windows that the text
alone would not have had (set to -inf before pooling). A text alone is right-padded by the network itself to
its widest filter (`PadToMinLength`), so the windows kept are those starting at positions
0 .. max(n, widest) - width, n the text's length: exactly the windows of the text alone, over the same ids.

The LSTM masks padding (the embedding's `mask_zero`): its batched output already is the text alone's, and
it is called as is. The TFLite entry point needs none of this: it runs one text and reads only its real ids
(lth_tf.export.tflite.LiteModule).
"""
from __future__ import annotations

from lth_tf.keras import keras, tf
from lth_tf.nets.models import EMBEDDING_LAYER, PAD_ID, PadToMinLength


def text_lengths(ids: tf.Tensor) -> tf.Tensor:
    """int32 [B]: for each row of right-padded ids [B, T], the position after its last non-zero id (0 for a
    row of padding only)."""
    positions = tf.range(1, tf.shape(ids)[1] + 1, dtype=tf.int32)
    return tf.reduce_max(tf.where(ids != PAD_ID, positions[None, :], 0), axis=1)


def _inbound(layer: keras.layers.Layer) -> list:
    return list(tf.nest.flatten(layer.inbound_nodes[0].inbound_layers))


class _CNN:
    """The parts of a build_cnn network, found through its graph: the padding layer, the embedding, each
    (convolution, max-pool) branch in the order the concatenation takes them, and the layers after it
    (dropout, output), applied in order."""

    def __init__(self, model: keras.Model):
        layers = {id(layer) for layer in model.layers}
        pools = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalMaxPooling1D)]
        concat = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
        if concat:
            pools = _inbound(concat[0])
        self.branches = []
        for pool in pools:
            (conv,) = _inbound(pool)
            if not isinstance(conv, keras.layers.Conv1D) or conv.padding != "valid" or conv.strides != (1,) \
                    or conv.dilation_rate != (1,):
                raise ValueError(f"{pool.name} does not pool a plain Conv1D: cannot mask its padding")
            self.branches.append((conv, pool))
        pads = [layer for layer in model.layers if isinstance(layer, PadToMinLength)]
        self.min_length = pads[0].min_length if pads else 0
        self.pad = pads[0] if pads else None
        self.embedding = model.get_layer(EMBEDDING_LAYER)
        self.head, last = [], concat[0] if concat else pools[0]
        while True:
            following = [n.outbound_layer for n in last.outbound_nodes if id(n.outbound_layer) in layers]
            if not following:
                break
            if len(following) > 1:
                raise ValueError(f"{last.name} feeds several layers: not a build_cnn network")
            last = following[0]
            self.head.append(last)
        self.concat = concat[0] if concat else None

    def __call__(self, ids: tf.Tensor) -> tf.Tensor:
        x = self.embedding(self.pad(ids) if self.pad is not None else ids)
        alone_length = tf.maximum(text_lengths(ids), self.min_length)  # what PadToMinLength makes of the text
        pooled = []
        for conv, _ in self.branches:
            y = conv(x)  # [B, T - w + 1, F]
            width = conv.kernel_size[0]
            keep = tf.range(tf.shape(y)[1])[None, :] < (alone_length - width + 1)[:, None]
            y = tf.where(keep[:, :, None], y, tf.constant(-float("inf"), y.dtype))
            pooled.append(tf.reduce_max(y, axis=1))
        x = self.concat(pooled) if self.concat is not None else pooled[0]
        for layer in self.head:
            x = layer(x, training=False)
        return x


def is_cnn(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.GlobalMaxPooling1D) for layer in model.layers)


def per_text_logits_fn(model: keras.Model):
    """A function ids [B, T] (right-padded with 0) -> logits [B, units], each row what `model` gives for that
    text alone. Built once per model (the CNN's graph is read here)."""
    if not is_cnn(model):
        return lambda ids: model(ids, training=False)
    return _CNN(model)
