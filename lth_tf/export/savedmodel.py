"""The SavedModel: the ticket as a plain `tf.Module` taking raw text (tokeniser and vocabulary in the graph)
or token ids, and its reload check against the Keras network."""
from __future__ import annotations

import numpy as np

from lth_tf.errors import UserError
from lth_tf.export.ticket import LoadedRun
from lth_tf.export.verify import Examples
from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID, UNK_ID, predictions, probabilities
from lth_tf.sparsity import registry


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


def save_saved_model(model: keras.Model, run: LoadedRun, path: str) -> None:
    module = ServingModule(model, run.vocab, run.num_classes, run.cfg.data.max_len)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve_text,
                                                  "token_ids": module.serve_ids})


def check_saved_model(path: str, model: keras.Model, run: LoadedRun, ex: Examples, limit: int = 64) -> dict:
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
