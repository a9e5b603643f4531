"""The mobile contract written beside every export: what an app needs to feed the TFLite model and read its
answer without this package.

- `labels.txt`: line i = the name of class i (the columns of `probabilities`).
- `vocab.txt`: line i = the token of id i (0 `<pad>`, 1 `<unk>`).
- `tokenizer.json`: the tokeniser's rules as data (lth_tf.data.tokenizer.rules_as_data: every step in the
  order lth_tf.data.tokenize applies it), then how tokens become the model's input (vocabulary lookup,
  unknown id, --max_len, the TFLite length, padding).
- `tokenizer_cases.json`: reference cases, text -> tokens -> token ids (this export's vocabulary), covering
  URLs, emoticons, non-ASCII text, IMDb's `<br />`, an empty text, casing and runs of punctuation: a port of
  the tokeniser is right when it reproduces every case.
"""
from __future__ import annotations

import json
import os

from lth_tf import atomic
from lth_tf.nets.models import PAD_ID, UNK_ID

LABELS, VOCAB, TOKENIZER, TOKENIZER_CASES = "labels.txt", "vocab.txt", "tokenizer.json", "tokenizer_cases.json"
FILES = (LABELS, VOCAB, TOKENIZER, TOKENIZER_CASES)

# (name, text): what a port of the tokeniser most often gets wrong.
REFERENCE_TEXTS = [
    ("url", "Trailer at https://www.imdb.com/title/tt0111161/?ref_=nv_sr_1 or www.example.com/a-b, see it!"),
    ("emoticons", "Loved it :) hated the end :( ;-) (: =) and word:) too :-("),
    ("non_ascii", "Café naïve Zoë – «déjà vu» don’t “curly” Привет, мир! Ελλάδα. 東京。すごい！ 🙂👍 ©2001…"),
    ("html_line_breaks", "Good.<br /><br />Bad<br/>ugly<BR>end <br  /> x"),
    ("empty", ""),
    ("only_spaces_and_breaks", " \t<br /><br />\n\u00a0 "),
    ("casing", "The THE the DON'T don't Don't I'M i'm"),
    ("punctuation_runs", "Wow!!!... really?!?! ***spoiler*** --- ((yes)) \"quoted\"... '90s -- x--y"),
    ("clitics_and_numbers", "I can't believe it's $5.99, 10% off; Mr. Smith's 2nd film (1999) was 7/10, 1,000 times."),
    ("abbreviations", "J. R. R. Tolkien, Ph.D. in the U.S. e.g. at 10am vs. 5 p.m. MST3K."),
    ("whitespace_and_controls", "tab\there\nnew\u2003em\u200bzero-width \x96dash\x00nul"),
]


def labels_text(class_names: list[str]) -> str:
    return "".join(f"{name}\n" for name in class_names)


def vocabulary_text(vocab: list[str]) -> str:
    return "\n".join(vocab) + "\n"


def encoding(vocab_size: int, max_len: int, tflite_length: int | None) -> dict:
    return {
        "vocabulary": f"{VOCAB}: line i (from 0) is the token of id i; a token's id is the line that equals it "
                      f"exactly (case-sensitive, UTF-8); lines 0 and 1 (<pad>, <unk>) are never matched",
        "vocabulary_size": vocab_size, "unknown_id": UNK_ID, "padding_id": PAD_ID,
        "max_len": max_len or None,
        "max_len_note": (f"the SavedModel keeps the first {max_len} tokens of a text" if max_len else
                         "no cap: the SavedModel reads every token"),
        "tflite_length": tflite_length,
        "tflite_input": (f"int32 [1, {tflite_length}]: the first {tflite_length} ids, then 0s (right padding); "
                         f"an empty text is all 0s" if tflite_length else None),
        "labels": f"{LABELS}: line i is the name of class i, the i-th column of `probabilities`",
    }


def tokenizer_spec(vocab_size: int, max_len: int, tflite_length: int | None) -> dict:
    from lth_tf.data.tokenizer import rules_as_data

    return {"about": "How a text becomes the model's input. `steps` is lth_tf.data.tokenize (pure Python) and "
                     "lth_tf.data.tokenize_tf (TensorFlow, inside the SavedModel) as data; tokenizer_cases.json "
                     "holds reference cases a port must reproduce.",
            **rules_as_data(), "encoding": encoding(vocab_size, max_len, tflite_length)}


def tokenizer_cases(vocab: list[str], max_len: int, tflite_length: int | None) -> dict:
    """Each reference text (plus one made of vocabulary words, so that known ids appear) -> normalised text,
    tokens, token ids (whole text), and the ids the models read (SavedModel: --max_len; TFLite: its length)."""
    from lth_tf.data.tokenizer import normalize, tokenize

    index = {t: i for i, t in enumerate(vocab) if i > UNK_ID}
    words = " ".join(vocab[2:12])
    cases = []
    for name, text in REFERENCE_TEXTS + [("vocabulary_words", words)]:
        tokens = tokenize(text)
        ids = [index.get(t, UNK_ID) for t in tokens]
        cases.append({"name": name, "text": text, "normalized": normalize(text), "tokens": tokens,
                      "token_ids": ids,
                      "saved_model_ids": ids[:max_len] if max_len else ids,
                      "tflite_ids": ids[:tflite_length] if tflite_length else None})
    return {"about": "Reference cases: text -> tokens (lth_tf.data.tokenize) -> token ids (this export's "
                     f"{VOCAB}, unknown -> {UNK_ID}). `normalized` is the text after the last replace_all step "
                     "of tokenizer.json (before the split); `saved_model_ids` are the ids the SavedModel reads "
                     "(--max_len), `tflite_ids` the ids to put before the zero padding of the TFLite input.",
            "cases": cases}


def _write_json(path: str, obj) -> None:
    """Keys in the order written, non-ASCII characters as themselves (readable); all-ASCII escapes if some
    text is not valid Unicode (a vocabulary token kept with surrogate escapes)."""
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=2)
    atomic.write_text(path, text + "\n")


def write_contract(out: str, vocab: list[str], class_names: list[str], max_len: int,
                   tflite_length: int | None) -> dict:
    """labels.txt, vocab.txt, tokenizer.json, tokenizer_cases.json into `out`; returns what metadata.json says
    about them."""
    atomic.write_text(os.path.join(out, LABELS), labels_text(class_names))
    with open(os.path.join(out, VOCAB), "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(vocabulary_text(vocab))
    _write_json(os.path.join(out, TOKENIZER), tokenizer_spec(len(vocab), max_len, tflite_length))
    cases = tokenizer_cases(vocab, max_len, tflite_length)
    _write_json(os.path.join(out, TOKENIZER_CASES), cases)
    return {"labels": LABELS, "vocabulary": VOCAB, "tokenizer": TOKENIZER, "tokenizer_cases": TOKENIZER_CASES,
            "reference_cases": len(cases["cases"])}
