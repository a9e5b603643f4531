"""The SavedModel: the ticket as a plain `tf.Module` taking raw text (tokeniser and vocabulary in the graph)
or token ids, each text's answer independent of the rest of its batch (lth_tf.export.serving), and its reload
check against the Keras network."""
from __future__ import annotations

import numpy as np

from lth_tf.errors import UserError
from lth_tf.export.serving import per_text_logits_fn
from lth_tf.export.ticket import LoadedRun
from lth_tf.export.verify import Examples, keras_probabilities
from lth_tf.keras import keras, tf
from lth_tf.nets.models import PAD_ID, UNK_ID, predictions, probabilities
from lth_tf.sparsity import registry

# Outputs of both signatures (serving_default also returns `token_ids`, the ids the network read).
OUTPUTS = ("probabilities", "class_ids", "class_name", "class_names")


def _tokenize_tf():
    try:
        from lth_tf.data import tokenize_tf
    except ImportError as e:  # pragma: no cover - lth_tf.data ships with the package
        raise UserError(f"cannot import lth_tf.data.tokenize_tf ({e}): the text signature needs the tokeniser")
    return tokenize_tf


class ServingModule(tf.Module):
    """What the SavedModel holds: the network's variables by stable name, the vocabulary table, and its
    functions. The Keras model is closed over, not tracked, so nothing Keras-specific is saved.

    Signatures: `serving_default` (texts) and `token_ids` (ids), see docs/export.md. Also saved, as a
    function of the module (not a signature): `tokenize(texts) -> {tokens, token_ids, lengths}`, the
    tokenisation and vocabulary lookup of `serving_default` before --max_len, for checking a client's own."""

    def __init__(self, model: keras.Model, vocab: list[str], num_classes: int, max_len: int = 0,
                 class_names: list[str] | None = None):
        super().__init__(name="lth_tf_export")
        self.named_weights = dict(registry.all_weights(model))
        keys = [t.encode("utf-8", "surrogateescape") for t in vocab[2:]]  # <pad>/<unk> are never looked up
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                                tf.range(2, len(vocab), dtype=tf.int64)),
            default_value=UNK_ID)
        names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        if len(names) != num_classes:
            raise UserError(f"{len(names)} class names for {num_classes} classes")
        names_bytes = [n.encode("utf-8") for n in names]
        tokenize = _tokenize_tf()
        logits_of = per_text_logits_fn(model)

        def outputs(ids):
            logits = logits_of(ids)
            class_ids = predictions(logits, num_classes)
            table = tf.constant(names_bytes, tf.string)
            return {"probabilities": probabilities(logits, num_classes), "class_ids": class_ids,
                    "class_name": tf.gather(table, class_ids),
                    "class_names": tf.tile(table[None, :], [tf.shape(ids)[0], 1])}

        def lookup(tokens):
            return tf.cast(tf.ragged.map_flat_values(self.table.lookup, tokens), tf.int32)

        def serve_ids(token_ids):
            return outputs(token_ids)

        def serve_text(texts):
            tokens = tokenize(texts)
            if max_len > 0:
                tokens = tokens[:, :max_len]
            dense = lookup(tokens).to_tensor(default_value=PAD_ID)
            dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])  # at least one column
            return {**outputs(dense), "token_ids": dense}

        def tokenize_texts(texts):
            tokens = tokenize(texts)
            return {"tokens": tokens.to_tensor(default_value=""), "token_ids": lookup(tokens).to_tensor(PAD_ID),
                    "lengths": tf.cast(tokens.row_lengths(), tf.int32)}

        self.serve_text = tf.function(serve_text, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        self.serve_ids = tf.function(serve_ids,
                                     input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
        self.tokenize = tf.function(tokenize_texts, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])


def save_saved_model(model: keras.Model, run: LoadedRun, path: str) -> None:
    module = ServingModule(model, run.vocab, run.num_classes, run.cfg.data.max_len, run.class_names)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve_text,
                                                  "token_ids": module.serve_ids})


def oov_word(vocab: list[str]) -> str:
    """A word that is one token and not in the vocabulary: it stands for <unk> in texts rebuilt from ids."""
    from lth_tf.data import tokenize

    known = set(vocab)
    word = "qzxunknownqzx"
    while word in known or tokenize(word) != [word]:
        word += "q"
    return word


def python_ids(texts: list[str], vocab: list[str], max_len: int) -> list[list[int]]:
    """The ids the text signature should read: lth_tf.data.tokenize, vocab.txt (unknown -> 1), --max_len."""
    from lth_tf.data import tokenize

    index = {t: i for i, t in enumerate(vocab) if i > UNK_ID}  # as the SavedModel's table: <pad>/<unk> are not keys
    rows = [[index.get(t, UNK_ID) for t in tokenize(x)] for x in texts]
    return [r[:max_len] if max_len > 0 else r for r in rows]


def padded(rows: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(rows), max([1] + [len(r) for r in rows])), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def check_saved_model(path: str, model: keras.Model, run: LoadedRun, ex: Examples, limit: int = 64,
                      alone: int = 16) -> dict:
    """Reload the SavedModel and check, on up to `limit` test texts:
    - `token_ids` signature on the padded batch vs the Keras network on each text alone;
    - batch independence: the first `alone` texts through the signature one at a time vs in the batch;
    - `serving_default` on texts rebuilt from the ids (tokens joined by spaces, <unk> written as a word that is
      not in the vocabulary): its token ids vs lth_tf.data.tokenize + vocab.txt on the same texts, and its
      probabilities vs the Keras network on those ids. Rebuilding is not always exact (re-tokenising joined
      tokens can split them differently, e.g. "'s" alone becomes "'" "s"): the share of rebuilt texts that give
      back their original ids is reported for information, it is not a check of the model."""
    loaded = tf.saved_model.load(path)
    n = min(limit, len(ex.ids))
    if not n:
        return {"checked": 0}
    lengths = ex.lengths[:n]
    sub = Examples(ex.ids[:n, :max(1, int(lengths.max()))], lengths, None, "")
    by_ids = loaded.signatures["token_ids"]
    got = by_ids(token_ids=tf.constant(sub.ids))["probabilities"].numpy()
    want = keras_probabilities(model, sub, run.num_classes)
    one_by_one = np.stack([by_ids(token_ids=tf.constant(row[None, :max(1, int(k))]))["probabilities"].numpy()[0]
                           for row, k in zip(sub.ids[:alone], lengths[:alone])])

    unk = oov_word(run.vocab)
    texts = [" ".join(run.vocab[i] if i > UNK_ID else unk for i in row[:k]) for row, k in zip(sub.ids, lengths)]
    expected_rows = python_ids(texts, run.vocab, run.cfg.data.max_len)
    out = loaded.signatures["serving_default"](texts=tf.constant(texts))
    served_ids = out["token_ids"].numpy()
    same_ids = [list(served_ids[i][:len(r)]) == r and not served_ids[i][len(r):].any()
                for i, r in enumerate(expected_rows)]
    expected = padded(expected_rows)
    text_want = keras_probabilities(model, Examples(expected, np.asarray([len(r) for r in expected_rows]), None, ""),
                                    run.num_classes)
    from_text = out["probabilities"].numpy()
    original = [list(row[:k]) for row, k in zip(sub.ids, lengths)]
    cap = run.cfg.data.max_len
    roundtrip = [r == (o[:cap] if cap > 0 else o) for r, o in zip(expected_rows, original)]
    names = out["class_names"].numpy()
    return {"checked": int(n),
            "token_ids_vs_keras_alone_max_abs_diff": float(np.abs(got - want).max()),
            "token_ids_vs_keras_alone_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1))),
            "batched_vs_alone_texts": int(len(one_by_one)),
            "batched_vs_alone_max_abs_diff": float(np.abs(got[:len(one_by_one)] - one_by_one).max()),
            "text_signature_ids_equal_python_tokenizer": float(np.mean(same_ids)),
            "text_signature_vs_keras_max_abs_diff": float(np.abs(from_text - text_want).max()),
            "text_signature_vs_keras_agreement": float(np.mean(from_text.argmax(-1) == text_want.argmax(-1))),
            "text_probabilities_sum_to_one": bool(np.allclose(from_text.sum(-1), 1.0, atol=1e-5)),
            "class_names_output": bool(all([x.decode("utf-8") for x in row] == list(run.class_names)
                                           for row in names)),
            "rebuilt_texts_same_ids": float(np.mean(roundtrip))}


def describe_check(role: str, c: dict) -> str:
    """What was checked and what came out, in words (logged by the export)."""
    if not c.get("checked"):
        return f"export: {role} SavedModel written (no test texts to check it on)"
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    return "\n".join([
        f"export: {role} SavedModel reloaded and checked on {c['checked']} test texts:",
        f"  token_ids signature vs the Keras network on each text alone: same class for "
        f"{pct(c['token_ids_vs_keras_alone_agreement'])}, max probability difference "
        f"{c['token_ids_vs_keras_alone_max_abs_diff']:.1e}",
        f"  each of {c['batched_vs_alone_texts']} texts alone vs in the batch: max probability difference "
        f"{c['batched_vs_alone_max_abs_diff']:.1e} (batch-independent serving)",
        f"  raw-text signature on the texts rebuilt from their tokens: its token ids equal lth_tf.data.tokenize's "
        f"for {pct(c['text_signature_ids_equal_python_tokenizer'])}; its probabilities vs Keras on those ids: same "
        f"class for {pct(c['text_signature_vs_keras_agreement'])}, max difference "
        f"{c['text_signature_vs_keras_max_abs_diff']:.1e}",
        f"  (for information, not a check: {pct(c['rebuilt_texts_same_ids'])} of the rebuilt texts re-tokenise to "
        f"their original ids; joining tokens with spaces is not always reversible: \"'s\" alone re-tokenises as "
        f"\"'\" \"s\")"])
