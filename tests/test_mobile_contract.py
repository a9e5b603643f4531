"""The tokeniser's rules as data (lth_tf.data.tokenizer.rules_as_data, written as tokenizer.json by every
export): a port that follows the JSON alone tokenises exactly as lth_tf.data.tokenize, and the reference
cases cover what ports get wrong."""
import json
import re

from lth_tf.data import tokenize
from lth_tf.data import tokenizer as T
from lth_tf.export import contract

from test_data_tokenize import CASES, _sample_texts


def _port(spec: dict):
    """A tokeniser built from the JSON only (what an app developer would write), with Python's `re`."""
    steps = json.loads(json.dumps(spec))["steps"]  # through JSON, as a file would give it

    def run(text: str) -> list[str]:
        for step in steps:
            if step["op"] == "wrap":
                text = step["prefix"] + text + step["suffix"]
            elif step["op"] == "replace_all":
                pattern = re.compile(step["pattern"])
                for _ in range(step["passes"]):
                    text = pattern.sub(step["replacement"], text)
            elif step["op"] == "split":
                return [t for t in text.split(step["separator"]) if t]
            else:
                raise AssertionError(step)
        raise AssertionError("no split step")

    return run


def test_rules_as_data_are_the_rules():
    spec = T.rules_as_data()
    assert spec["tokenizer"] == T.TOKENIZER_VERSION
    steps = spec["steps"]
    assert steps[0] == {"op": "wrap", "prefix": "  ", "suffix": "  "} and steps[-1] == {"op": "split", "separator": " "}
    assert [(s["pattern"], s["replacement"], s["passes"]) for s in steps[1:-1]] == T.RULES
    assert set(spec["ops"]) == {s["op"] for s in steps}


def test_a_port_from_the_json_tokenizes_like_lth_tf():
    port = _port(T.rules_as_data())
    texts = [c[0] for c in CASES] + [t for _, t in contract.REFERENCE_TEXTS] + _sample_texts()[:1500]
    mismatches = [t[:60] for t in texts if port(t) != tokenize(t)]
    assert not mismatches, mismatches[:3]
    for text, expected in CASES:
        assert port(text) == expected


def test_reference_cases_cover_what_ports_get_wrong():
    cases = {c["name"]: c for c in contract.tokenizer_cases(["<pad>", "<unk>", "good", "movie", "."], 0, 8)["cases"]}
    assert cases["empty"]["tokens"] == [] and cases["only_spaces_and_breaks"]["tokens"] == []
    assert cases["html_line_breaks"]["tokens"] == ["Good", ".", "Bad", "ugly", "end", "x"]
    assert {":)", ":(", ";-)", "(:", "=)", ":-("} <= set(cases["emoticons"]["tokens"])
    assert {"Café", "naïve", "Привет", "🙂", "東京。すごい"} <= set(cases["non_ascii"]["tokens"])
    assert cases["casing"]["tokens"][:6] == ["The", "THE", "the", "DON'T", "do", "n't"]
    assert cases["punctuation_runs"]["tokens"][:4] == ["Wow", "!", "!", "!"]
    assert any("imdb.com" in t for t in cases["url"]["tokens"])
    assert cases["vocabulary_words"]["token_ids"] == [2, 3, 4] and cases["vocabulary_words"]["tflite_ids"] == [2, 3, 4]
    for c in cases.values():
        assert c["tokens"] == tokenize(c["text"]) and c["normalized"].split() == c["tokens"]
        assert len(c["tflite_ids"]) <= 8
