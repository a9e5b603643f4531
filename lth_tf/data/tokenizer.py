"""A rule tokeniser approximating spaCy's English tokenizer (no lower-casing), written as a list of regex
replacements followed by a split on spaces, so that the very same rules run in Python (`re`) and inside a
TensorFlow graph (`tf.strings.regex_replace`, RE2). Exported SavedModels therefore take raw strings.

Portability rules the patterns follow (and `tests/test_data_tokenize.py` checks on every sample text):
- no look-around (RE2 has none): context is captured and written back (`\\1`), or protected by a
  placeholder character that is put back at the end;
- no `\\w`, `\\s`, `\\d`, `.` or case-insensitive flags: RE2's are ASCII-only while Python's are Unicode, so
  every class is spelled out;
- no pattern can match the empty string (the engines differ on empty matches);
- every whitespace character Python's `str.split()` knows is first turned into a space, so Python's and
  TensorFlow's whitespace splits agree.

Placeholders \\x01-\\x04 are free because the first rules turn every control character into a space.
See docs/data.md for where this differs from spaCy.
"""
from __future__ import annotations

import re

# Bump whenever a rule changes: it is part of the data cache key.
TOKENIZER_VERSION = "spacy-approx-1"

# Every character for which Python's str.isspace() is true (str.split() splits on these), plus the other
# C0 control characters and DEL. All become a plain space.
_SPACES = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
           + "\u2028\u2029\u202f\u205f\u3000")
_CONTROLS = "".join(map(chr, range(0x00, 0x09))) + "".join(map(chr, range(0x0E, 0x1C))) + "\x7f"

# Split off as tokens of their own wherever they stand (spaCy: prefixes, suffixes and most infixes).
_ALWAYS = ('!"#$%&()*,:;<=>?[]^_{|}~'
           + "".join(chr(c) for c in range(0x80, 0xA0) if c != 0x85)  # C1 controls: cp1252 dashes, quotes
           + "¡¢£¤¥¦§¨©«¬®¯°±·»¿×÷–—―“”„‚‹›…•′″€™"
           + "「」『』（）【】《》〈〉、。！？，；：～")
# Quote-like marks split off only at the start or end of a token ("don´t" stays one token, as in spaCy).
_EDGE = "'’‘`´"
_APOS = "'’"  # apostrophes of English clitics
_UPPER = "A-ZÀ-ÖØ-ÞΑ-ΩА-ЯЀ-Џ"
_LETTER = "A-Za-zÀ-ÖØ-öø-ɏΑ-Ωα-ωА-яЀ-џ"

# Abbreviations whose final period stays attached (a subset of spaCy's exceptions); single letters and
# dotted initialisms (U.S., e.g., a.m.) are handled by the pattern itself.
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Rev", "Gen", "Gov", "Sen", "Rep", "Lt",
                  "Col", "Sgt", "Capt", "Inc", "Ltd", "Co", "Corp", "Bros", "vs", "etc", "Mt", "Ph\x01D",
                  "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")


def _char_class(chars: str) -> str:
    """A character class of these literal characters, escaped the same way for `re` and RE2."""
    return "[" + "".join("\\" + c if c in "\\]^[-" else c for c in chars) + "]"


P_DOT, P_COMMA, P_COLON, P_CAND = "\x01", "\x02", "\x03", "\x04"

# (pattern, replacement, passes). Replacements use only \1-\9, which both engines read the same way.
# Passes > 1 where a match consumes the context the next match needs ("1,2,3", "Mr. Dr.").
RULES: list[tuple[str, str, int]] = [
    # IMDb's HTML line breaks (<br />, <br/>, <BR>) become spaces.
    (r"<[Bb][Rr] */?>", " ", 1),
    (_char_class(_SPACES + _CONTROLS), " ", 1),
    # Protect thousands separators and times/ratios: 1,000  12:30.
    (r"([0-9]),([0-9])", "\\1" + P_COMMA + "\\2", 2),
    (r"([0-9]):([0-9])", "\\1" + P_COLON + "\\2", 2),
    ("(" + _char_class(_ALWAYS) + ")", " \\1 ", 1),
    # Ellipses of two or more periods are one token; their last period is protected from the next rules.
    (r"(\.+)\.", " \\1" + P_DOT + " ", 1),
    (r"( Ph)\.(D)", "\\1" + P_DOT + "\\2", 1),  # Ph.D.
    # Abbreviations and initials keep their final period: Mr. Dr. J. U.S. e.g.
    (r" ((?:" + "|".join(_ABBREVIATIONS) + r")|(?:[A-Za-z]\.)*[A-Za-z])\.( )", " \\1" + P_DOT + "\\2", 2),
    # A period ending a token is split off: "end." -> "end" "."
    (r"\.( )", " .\\1", 1),
    # A period between a non-capital and a capital is split off ("movie.The"), but not after a capital or
    # a digit ("U.S.A", "3.D"): mark candidates, restore those after a capital/digit, split the rest.
    ("\\.([" + _UPPER + "])", P_CAND + "\\1", 1),
    ("([" + _UPPER + "0-9])" + P_CAND, "\\1.", 1),
    (P_CAND, " . ", 1),
    # Hyphens before a letter ("well-known", "e-mail") and between digits ("10-15") are split off.
    ("(-+)([" + _LETTER + "])", " \\1 \\2", 1),
    (r"([0-9])(-+)([0-9])", "\\1 \\2 \\3", 2),
    # A slash before a letter is split off ("and/or"), not between digits ("7/10").
    ("/([" + _LETTER + "])", " / \\1", 1),
    # Quotes and apostrophes at the start or end of a token.
    (" (" + _char_class(_EDGE) + "+)", " \\1 ", 1),
    ("(" + _char_class(_EDGE) + "+) ", " \\1 ", 1),
    # English clitics: don't -> do n't, can't -> ca n't, it's -> it 's, 're 've 'll 'd 'm.
    ("([Nn]" + _char_class(_APOS) + "[Tt]) ", " \\1 ", 1),
    ("(" + _char_class(_APOS) + "(?:[Ss]|[Mm]|[Dd]|[Ll][Ll]|[Vv][Ee]|[Rr][Ee])) ", " \\1 ", 1),
    # spaCy's special cases: cannot -> can not, gonna -> gon na, gotta -> got ta, wanna -> wan na.
    ("([Cc]an)(not )", "\\1 \\2", 1),
    ("([Gg]on)(na )", "\\1 \\2", 1),
    ("([Gg]ot)(ta )", "\\1 \\2", 1),
    ("([Ww]an)(na )", "\\1 \\2", 1),
    (P_DOT, ".", 1),
    (P_COMMA, ",", 1),
    (P_COLON, ":", 1),
]

_COMPILED = [(re.compile(p), r.replace("\\1", "\\g<1>").replace("\\2", "\\g<2>").replace("\\3", "\\g<3>"), n)
             for p, r, n in RULES]


def normalize(text: str) -> str:
    """The text after every rule: tokens separated by one or more spaces."""
    text = " " + text + " "
    for pattern, repl, passes in _COMPILED:
        for _ in range(passes):
            text = pattern.sub(repl, text)
    return text


def tokenize(text: str) -> list[str]:
    """Split one text into tokens (cased, spaCy-like). Pure Python; `tokenize_tf` is the same in TF."""
    return normalize(text).split()


def tokenize_many(texts) -> list[list[str]]:
    return [normalize(t).split() for t in texts]


def tokenize_tf(texts):
    """The same rules as `tokenize`, in TensorFlow string ops: a string tensor of shape [N] gives a
    RaggedTensor [N, None] of tokens (a scalar gives a 1-D tensor of tokens). Input must be UTF-8."""
    from lth_tf.keras import tf

    x = tf.strings.join([" ", tf.convert_to_tensor(texts, tf.string), " "])
    for pattern, repl, passes in RULES:
        for _ in range(passes):
            x = tf.strings.regex_replace(x, pattern, repl, replace_global=True)
    return tf.strings.split(x)
