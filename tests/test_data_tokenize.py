"""The rule tokeniser: examples, and Python `re` vs TensorFlow RE2 agreement."""
import csv
import gzip
import os
import re

import pytest

from lth_tf.data import tokenize, tokenize_tf
from lth_tf.data import tokenizer as T
from lth_tf.data.sources import SAMPLES_DIR

# Every expected value below is what spaCy 3.8's English rule tokenizer (spacy.blank("en")) gives, except
# where a comment says otherwise.
CASES = [
    # clitics, as spaCy splits them
    ("I don't know", ["I", "do", "n't", "know"]),
    ("It's fine, isn't it?", ["It", "'s", "fine", ",", "is", "n't", "it", "?"]),
    ("can't won't DON'T", ["ca", "n't", "wo", "n't", "DON'T"]),  # spaCy has no upper-case exceptions
    ("they're I've we'll she'd I'm", ["they", "'re", "I", "'ve", "we", "'ll", "she", "'d", "I", "'m"]),
    ("John's dogs' toys", ["John", "'s", "dogs", "'", "toys"]),
    ("it’s don’t", ["it", "’s", "do", "n’t"]),
    ("cannot gonna gotta", ["can", "not", "gon", "na", "got", "ta"]),
    ("dont thats youre im Im its ill well shed wed hes", ["do", "nt", "that", "s", "you", "re", "i", "m", "I", "m",
                                                          "its", "ill", "well", "shed", "we", "d", "he", "s"]),
    ("'cause 'em goin' ol' '' y'all c'mon", ["'cause", "'em", "goin'", "ol'", "''", "y'", "all", "c'm", "on"]),
    # IMDb line breaks
    ("Good.<br /><br />Bad<br/>ugly<BR>end", ["Good", ".", "Bad", "ugly", "end"]),  # spaCy keeps <br />
    # punctuation
    ("Hello, world!", ["Hello", ",", "world", "!"]),
    ('"Quoted" (parens) [x] {y}', ['"', "Quoted", '"', "(", "parens", ")", "[", "x", "]", "{", "y", "}"]),
    ("'single' wow!!!", ["'", "single", "'", "wow", "!", "!", "!"]),
    ("wait...what.... end..", ["wait", "...", "what", "....", "end", ".."]),
    ("great movie.The end.I think", ["great", "movie", ".", "The", "end", ".", "I", "think"]),
    ("well-known e-mail -- x--y", ["well", "-", "known", "e", "-", "mail", "--", "x", "--", "y"]),
    ("*spoiler* #1 a;b @user", ["*", "spoiler", "*", "#", "1", "a;b", "@user"]),
    ("sh**t f***ing T&A film(s) Rififi(1955)", ["sh**t", "f***ing", "T&A", "film(s", ")", "Rififi(1955", ")"]),
    ("!!!!!!!!!!!!!!!!!!!! ok", ["!"] * 20 + ["ok"]),
    ("hello!\". (hello!)", ["hello", "!", '"', ".", "(", "hello", "!", ")"]),
    # numbers stay whole
    ("1,000 and 12:30, 3.5 or 7/10.", ["1,000", "and", "12:30", ",", "3.5", "or", "7/10", "."]),
    ("$5 10% 10-15 and/or", ["$", "5", "10", "%", "10", "-", "15", "and/or"]),
    ("x%. US$ 5€ 5+ +x =x x= %x", ["x%", ".", "US$", "5", "€", "5", "+", "+", "x", "=", "x", "x=", "%", "x"]),
    # abbreviations and initials keep their period
    ("Mr. Smith and Dr. Who in the U.S. e.g. here", ["Mr.", "Smith", "and", "Dr.", "Who", "in", "the", "U.S.",
                                                    "e.g.", "here"]),
    ("J. R. R. Tolkien, Ph.D. in USA.", ["J.", "R.", "R.", "Tolkien", ",", "Ph.D.", "in", "USA", "."]),
    ("-The --The x-. MST3K. No. vs. co. etc. t.v. o.k.", ["-The", "--The", "x-", ".", "MST3K.", "No", ".", "vs.",
                                                       "co.", "etc", ".", "t.v", ".", "o.k", "."]),
    # no lower-casing
    ("The THE the", ["The", "THE", "the"]),
    # unicode
    ("Café naïve Zoë.", ["Café", "naïve", "Zoë", "."]),
    ("“curly” «guillemets» don´t", ["“", "curly", "”", "«", "guillemets", "»", "don´t"]),
    ("Привет, мир! Ελλάδα.", ["Привет", ",", "мир", "!", "Ελλάδα", "."]),
    ("東京。すごい！", ["東京。すごい", "！"]),
    ("a\u00a0b\u2003c\u3000d\x85e\tf\ng", ["a", "b", "c", "d", "e", "f", "g"]),  # spaCy: space tokens
    ("zero\u200bwidth 🙂 ok", ["zero\u200bwidth", "🙂", "ok"]),
    ("x\x96y \x97 z", ["x\x96y", "\x97", "z"]),  # cp1252 dashes decoded as C1 controls (IMDb has them)
    ("a\x00b\x01c\x02d\x03e\x04f\x05g", ["a", "b", "c", "d", "e", "f", "g"]),  # controls (placeholders too)
    ("", []),
    ("   <br />  ", []),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_examples(text, expected):
    assert tokenize(text) == expected


def test_examples_in_tensorflow():
    from lth_tf.keras import tf
    texts = [c[0] for c in CASES]
    got = tokenize_tf(tf.constant(texts)).to_list()
    assert [[t.decode("utf-8") for t in row] for row in got] == [c[1] for c in CASES]


def test_rules_are_portable():
    """No construct that RE2 lacks or reads differently from Python `re`."""
    for pattern, repl, passes in T.RULES:
        for bad in ("\\w", "\\W", "\\s", "\\S", "\\d", "\\D", "\\b", "(?=", "(?!", "(?<", "(?i", "\\u"):
            assert bad not in pattern, (bad, pattern)
        assert not re.compile(pattern).fullmatch(""), pattern  # no empty matches
        assert re.fullmatch(r"(?:[^\\]|\\[1-9])*", repl), repl
        assert 1 <= passes <= 5


def _sample_texts():
    texts = []
    for name in ("imdb_sample.csv.gz", "ag_news_sample.csv.gz"):
        with gzip.open(os.path.join(SAMPLES_DIR, name), "rt", encoding="utf-8", newline="") as f:
            texts += [row[1] for row in list(csv.reader(f))[1:]]
    return texts


def test_python_and_tensorflow_agree_on_all_samples():
    from lth_tf.keras import tf
    texts = _sample_texts()
    assert len(texts) == 5000
    assert sum(any(ord(ch) > 127 for ch in t) for t in texts) > 50  # non-ASCII texts are in there
    extra = [c[0] for c in CASES] + ["".join(chr(c) for c in range(0, 0x250)), "ǅ ǈ ǋ ǲ ß ẞ İ ı ſ K Å",
                                     " ".join(chr(c) for c in range(0x2000, 0x2070)), "x" * 5000]
    texts += extra
    got = tokenize_tf(tf.constant(texts)).to_list()
    mismatches = [(t[:80], tokenize(t)[:10]) for t, row in zip(texts, got)
                  if tokenize(t) != [x.decode("utf-8") for x in row]]
    assert not mismatches, mismatches[:3]


def test_tokenize_tf_in_a_graph():
    from lth_tf.keras import tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def fn(x):
        return tokenize_tf(x).to_tensor(default_value="")

    out = fn(tf.constant(["It's OK.", "no"])).numpy().tolist()
    assert out == [[b"It", b"'s", b"OK", b"."], [b"no", b"", b"", b""]]


def test_tokenize_is_fast_enough():
    import time
    texts = _sample_texts()[:1000]
    t = time.perf_counter()
    n = sum(len(tokenize(x)) for x in texts)
    assert n > 100_000
    assert time.perf_counter() - t < 10  # ~0.3 s here; a guard against a pathological rule

