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

Placeholders (\\x01, \\x04, \\x05) are free because the first rules turn every control character into a space.
See docs/data.md for where this differs from spaCy.
"""
from __future__ import annotations

import re

# Bump whenever a rule changes: it is part of the data cache key.
TOKENIZER_VERSION = "spacy-approx-2"

# Every character for which Python's str.isspace() is true (str.split() splits on these), plus the other
# C0 control characters and DEL. All become a plain space.
_SPACES = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
           + "\u2028\u2029\u202f\u205f\u3000")
_CONTROLS = "".join(map(chr, range(0x00, 0x09))) + "".join(map(chr, range(0x0E, 0x1C))) + "\x7f"

# spaCy's character lists (spacy/lang/char_classes.py, English punctuation rules), spelled out.
# Split off wherever they stand: the ellipsis character and symbols (spaCy's "icons", \p{So}; a subset).
_ALWAYS = "…©®™°¦" + "".join(map(chr, range(0x2190, 0x2200))) + "".join(map(chr, range(0x2300, 0x2400))) + \
    "".join(map(chr, range(0x2500, 0x27C0))) + "".join(map(chr, range(0x2B00, 0x2C00)))
_ALWAYS_RANGES = "\U0001F000-\U0001FAFF"  # emoji
# Split off at the start or the end of a token (prefixes and suffixes), not inside it ("sh*t", "T&A").
_EDGE = (",:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"  # LIST_PUNCT
         "'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧"  # LIST_QUOTES
         "—–")
# Split off at the start of a token only ("$5", "%x", "=x"; but "US$", "x=").
_PREFIX_ONLY = "§%=$£€¥¢฿₽₹₩₪₫₴₱₺₿"
_UPPER = "A-ZÀ-ÖØ-ÞΑ-ΩА-ЯЀ-Џ"
_LOWER = "a-zß-öø-ÿα-ωа-яѐ-џ"
_ALPHA = "A-Za-zÀ-ÖØ-öø-ɏΑ-Ωα-ωА-яЀ-џ"
_APOS = "'’"

# Tokens whose final period stays (spaCy's exceptions; single lower-case letters: "a." .. "z.").
_ABBREVIATIONS = [
    "Adm", "Ak", "Ala", "Apr", "Ariz", "Ark", "Aug", "Bros", "Calif", "Co", "Colo", "Conn", "Corp", "D\\.C", "Dec",
    "Del", "Dr", "E\\.G", "E\\.g", "Feb", "Fla", "Ga", "Gen", "Gov", "I\\.E", "I\\.e", "Ia", "Id", "Ill", "Inc",
    "Ind", "Jan", "Jr", "Jul", "Jun", "Kan", "Kans", "Ky", "La", "Ltd", "Mar", "Mass", "Md", "Messrs", "Mich",
    "Minn", "Miss", "Mo", "Mont", "Mr", "Mrs", "Ms", "Mt", "N\\.C", "N\\.D", "N\\.H", "N\\.J", "N\\.M", "N\\.Y",
    "Neb", "Nebr", "Nev", "Nov", "Oct", "Okla", "Ore", "Pa", "Ph\\.D", "Prof", "Rep", "Rev", "S\\.C", "Sen", "Sep",
    "Sept", "St", "Tenn", "Va", "Wash", "Wis", "a\\.m", "co", "e\\.g", "i\\.e", "p\\.m", "v\\.s", "vs",
    "[a-zäöü]"]

# spaCy's English contractions, by clitic: the words before it (case matters: "DON'T" stays whole, as there).
_PRONOUNS_ETC = ["How", "There", "These", "They", "Those", "What", "When", "Where", "Why", "You"]
_NT = ["Ai", "Are", "Ca", "Could", "Dare", "Did", "Do", "Does", "Had", "Has", "Have", "Is", "May", "Might", "Must",
       "Need", "Ought", "Sha", "Should", "Was", "Were", "Wo", "Would"]  # n't, nt
_VE = ["Could", "How", "I", "Might", "Must", "Not", "Should", "There", "These", "They", "Those", "We", "What", "When",
       "Where", "Who", "Why", "Would", "You"]  # 've, ve
_D = ["He", "I", "It", "That", "This", "We", "Who"] + _PRONOUNS_ETC  # 'd, d
_LL = ["It", "That", "This", "Who"] + _PRONOUNS_ETC  # 'll, ll
_APOS_ONLY = ["He", "I", "She", "We", "Who"]  # 'd, 'll, 're but not d, ll, re: "shed", "ill", "hell", "were"
_S = ["He", "How", "She", "That", "There", "This", "What", "When", "Where", "Who", "Why"]  # s: "thats" (not "its")


def _char_class(chars: str, ranges: str = "") -> str:
    """A character class of these literal characters, escaped the same way for `re` and RE2."""
    return "[" + "".join("\\" + c if c in "\\]^[-" else c for c in chars) + ranges + "]"


def _words(words) -> str:
    """Alternation of the words and their lower-case forms, grouped by first letter so that `re` rejects a
    non-matching word after one test: ["Do", "Does", "Did"] -> "(?:[Dd](?:o|oes|id))"."""
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(w[0], []).append(w[1:])
    parts = []
    for first, rests in groups.items():
        head = f"[{first}{first.lower()}]" if first.isupper() else first
        rests = sorted(set(rests), key=lambda r: (-len(r), r))  # longest first: "Does" before "Do"
        parts.append(head + ("(?:" + "|".join(rests) + ")" if rests != [""] else ""))
    return "(?:" + "|".join(parts) + ")"


# Placeholders for characters that must escape the punctuation rules until the end (all are control
# characters, which the second rule turns into spaces, so none can come from the input).
P_DOT, P_CAND, P_APOS = "\x01", "\x04", "\x05"
_PLACEHOLDERS = {":": "\x06", ")": "\x07", "(": "\x08", ";": "\x0e", "-": "\x0f", "/": "\x10", "=": "\x11"}
# spaCy's emoticon exceptions made of punctuation only (the frequent ones), kept whole wherever they stand
# ("word:)", "(1999):"), as spaCy 3 re-merges them after splitting affixes.
_EMOTICONS = [":-)", ";-)", ":-(", ":)", "):", ":(", ";)", "(:", "=)"]
# Units after a number are split off: 100m, 5kg, MST3K (spaCy's list, ASCII part).
_UNITS = ["km", "m", "dm", "cm", "mm", "ha", "nm", "yd", "in", "ft", "kg", "g", "mg", "t", "lb", "oz", "m/s", "km/h",
          "kmh", "mph", "hPa", "Pa", "mbar", "mb", "MB", "kb", "KB", "gb", "GB", "tb", "TB", "T", "G", "M", "K"]


def _protect(text: str) -> str:
    return "".join(_PLACEHOLDERS.get(c, c) for c in text)


_E = _char_class(_EDGE + _PREFIX_ONLY)
_E_OPT = "(" + _E + ")?"

# (pattern, replacement, passes). Replacements use only \1-\9, which both engines read the same way
# (a group that did not take part gives ""). Passes > 1 where a match consumes the context the next match
# needs ("Mr. Dr.", "well-known-ish").
# Tokens are kept two spaces apart (every space becomes two, every inserted boundary is two), so a rule that
# consumes the space on each side of a token still leaves one for its neighbour: one pass suffices.
_A = _char_class(_APOS)
RULES: list[tuple[str, str, int]] = [
    # IMDb's HTML line breaks (<br />, <br/>, <BR>) become spaces; so do all other spaces and controls.
    (r"<[Bb][Rr] */?>", "  ", 1),
    (_char_class(" " + _SPACES + _CONTROLS) + "+", "  ", 1),
    ("(" + _char_class(_ALWAYS, _ALWAYS_RANGES) + ")", "  \\1  ", 1),
    # Ellipses of two or more periods are one token, wherever they stand; their last period is protected.
    (r"(\.+)\.", "  \\1" + P_DOT + "  ", 1),
    # spaCy's special cases: emoticons, '' (wherever they stand), and/or, w/o, 'cause 'em goin' ol'.
    *[(re.escape(e), "  " + _protect(e) + "  ", 1) for e in _EMOTICONS],
    ("''", "  " + P_APOS + P_APOS + "  ", 1),
    (" ([Aa]nd)/(or) ", " \\1" + _PLACEHOLDERS["/"] + "\\2 ", 1),
    (" ([Ww])/(o) ", " \\1" + _PLACEHOLDERS["/"] + "\\2 ", 1),
    (" '((?:[Cc](?:ause|os|oz|uz)|bout|em|nuff)) ", " " + P_APOS + "\\1 ", 1),
    (" ((?:[Dd]oin|[Gg]oin|[Hh]avin|[Ll]ovin|[Nn](?:othin|uthin)|[Ss]omethin|[Oo]l))' ", " \\1" + P_APOS + " ", 1),
    # Punctuation ending or starting a token (one run each; split into single characters below).
    ("(" + _char_class(_EDGE) + "+) ", "  \\1 ", 1),
    (" (" + _char_class(_EDGE + _PREFIX_ONLY) + "+)", " \\1  ", 1),
    (r" (\+)([^0-9 ])", " \\1  \\2", 1),  # "+x" but not "+5"
    # A period ending a token is split off, except after spaCy's abbreviations (Mr. vs. e.g. a.m. Calif.) and
    # after a single capital (J. U.S. MST3K.); after two capitals it is (USA.).
    (r"\.( )", P_CAND + "\\1", 1),
    (" ((?:" + "|".join(_ABBREVIATIONS) + "))" + P_CAND + " ", " \\1" + P_DOT + " ", 1),
    ("([" + _UPPER + "][" + _UPPER + "])" + P_CAND, "\\1  .", 1),
    ("([" + _UPPER + "])" + P_CAND, "\\1" + P_DOT, 1),
    (P_CAND, "  .", 1),
    ("(" + _char_class(_EDGE) + "+) ", "  \\1 ", 1),  # again: hello!". -> hello !" .
    # Runs of punctuation that stand alone are split into single characters ("!!!" -> "!" "!" "!"), but not
    # inside a word ("sh**t"): 8 characters a pass, 5 passes.
    (" (" + _E + ")(" + _E + ")" + _E_OPT * 6, " \\1  \\2  \\3  \\4  \\5  \\6  \\7  \\8  ", 5),
    # Infixes. A period between a lower-case letter and a capital: "movie.The" (not "Ph.D", "U.S.A", "3.D").
    (r"( Ph)\.(D)", "\\1" + P_DOT + "\\2", 1),
    ("\\.([" + _UPPER + "])", P_CAND + "\\1", 1),
    ("([" + _LOWER + "])" + P_CAND, "\\1  .  ", 1),
    (P_CAND, ".", 1),
    # Between digits: 10-15 1+2 2*3 2^8 (two passes for chains: 1-2-3).
    (r"([0-9])([-+*^])([0-9-])", "\\1  \\2  \\3", 2),
    # Hyphens and dashes before a letter, after a letter or digit: well-known, 1-star, x--y (not "-The").
    ("([" + _ALPHA + "0-9])(-+|—+|–|~)([" + _ALPHA + "])", "\\1  \\2  \\3", 2),
    # A comma between letters; : < > = / between a letter or digit and a letter (writer/director).
    ("([" + _ALPHA + "]),([" + _ALPHA + "])", "\\1  ,  \\2", 2),
    ("([" + _ALPHA + "0-9])([:<>=/])([" + _ALPHA + "])", "\\1  \\2  \\3", 2),
    # After a number: 10% 5+ 5€ 100m MST3K; 10am.
    ("([0-9])(" + "|".join(sorted(map(re.escape, _UNITS), key=lambda u: (-len(u), u))) + "|[%+$£€¥])( )",
     "\\1  \\2\\3", 1),
    (" (1[0-2]|[1-9])([ap]m) ", " \\1  \\2 ", 1),
    # Clitics: 's and 'S after any word; n't 've 'd 'll 're 'm after spaCy's words, with or without the
    # apostrophe where spaCy has both (don't / dont -> do n't / do nt, thats -> that s, cannot -> can not).
    ("(" + _A + "[sS]) ", "  \\1 ", 1),
    (" (" + _words(_NT) + ")(n" + _A + "?t) ", " \\1  \\2 ", 1),
    (" (" + _words(_VE) + ")(" + _A + "?ve) ", " \\1  \\2 ", 1),
    (" (" + _words(_D) + ")(" + _A + "?d) ", " \\1  \\2 ", 1),
    (" (" + _words(_LL) + ")(" + _A + "?ll) ", " \\1  \\2 ", 1),
    (" (" + _words(_PRONOUNS_ETC) + ")(" + _A + "?re) ", " \\1  \\2 ", 1),
    (" (" + _words(_APOS_ONLY) + ")(" + _A + "(?:d|ll|re)) ", " \\1  \\2 ", 1),
    (" ([Ii])(" + _A + "?m) ", " \\1  \\2 ", 1),
    (" (" + _words(_S) + ")(s) ", " \\1  \\2 ", 1),
    (" ([Cc]an)(not) ", " \\1  \\2 ", 1),
    (" ([Gg]on)(na) ", " \\1  \\2 ", 1),
    (" ([Gg]ot)(ta) ", " \\1  \\2 ", 1),
    (" ([Cc]" + _A + "m)(on) ", " \\1  \\2 ", 1),
    (" ([Yy]" + _A + "?)(all) ", " \\1  \\2 ", 1),
    (P_DOT, ".", 1),
    (P_APOS, "'", 1),
    *[(code, char, 1) for char, code in _PLACEHOLDERS.items()],
]

_COMPILED = [(re.compile(p), r, n) for p, r, n in RULES]

# Put around the text before the first rule (every rule sees a space on each side of every token).
MARGIN = "  "


def normalize(text: str) -> str:
    """The text after every rule: tokens separated by one or more spaces."""
    text = MARGIN + text + MARGIN
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

    x = tf.strings.join([MARGIN, tf.convert_to_tensor(texts, tf.string), MARGIN])
    for pattern, repl, passes in RULES:
        for _ in range(passes):
            x = tf.strings.regex_replace(x, pattern, repl, replace_global=True)
    return tf.strings.split(x)


def rules_as_data() -> dict:
    """The tokeniser as data, for reimplementations (an app that feeds an exported TFLite model, see
    docs/export.md): the steps in order, exactly those `normalize`/`tokenize` and `tokenize_tf` run.
    JSON-serialisable; `lth_tf.export` writes it as `tokenizer.json` beside every export."""
    return {
        "tokenizer": TOKENIZER_VERSION,
        "input": "one text as a sequence of Unicode code points (decode UTF-8 first; the TensorFlow version "
                 "requires valid UTF-8)",
        "regex_dialect": (
            "the subset common to RE2 and Python `re`: no look-around, no \\w \\s \\d or `.`, no flags; "
            "character classes spell out literal characters (escaped with a backslash: \\ ] ^ [ -) and "
            "code-point ranges, some outside the Basic Multilingual Plane (\\U0001F000-\\U0001FAFF): match "
            "code points, not UTF-16 units or bytes (JavaScript: the `u` flag; Java: java.util.regex does); "
            "no pattern matches the empty string"),
        "replacement_syntax": ("\\1 to \\9 insert a captured group (a group that did not take part inserts "
                               "nothing); every other character is literal (Java and JavaScript write $1, and "
                               "need a literal $ or \\ escaped)"),
        "ops": {
            "wrap": "put `prefix` before and `suffix` after the text",
            "replace_all": "replace every non-overlapping match of `pattern` by `replacement`, scanning left to "
                           "right (Python re.sub, RE2 GlobalReplace); `passes` > 1: do that whole replacement "
                           "`passes` times in a row",
            "split": "split on `separator` and drop empty strings (the rules leave no other whitespace)",
        },
        "steps": [
            {"op": "wrap", "prefix": MARGIN, "suffix": MARGIN},
            *[{"op": "replace_all", "pattern": pattern, "replacement": repl, "passes": passes}
              for pattern, repl, passes in RULES],
            {"op": "split", "separator": " "},
        ],
    }
