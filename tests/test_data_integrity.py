"""Nothing lost, nothing silently wrong (data layer): the cache follows the data's content, missing classes are
refused, CSV edge cases (BOM, empty, header only, class out of range) give clear messages, a damaged cache is
rebuilt, the cache is written with lth_tf.atomic. Small fixtures built in tmp_path only. Sections are numbered
as the classes of the issue "Nothing lost, nothing silently wrong"; class 3 (GloVe nan/inf) is in
test_data_glove.py."""
import os
import shutil
import sys
import tarfile

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import data_fixtures as fx  # noqa: E402

from lth_tf import atomic  # noqa: E402
from lth_tf.config import DataConfig  # noqa: E402
from lth_tf.data import prepare, prepare_data, sources  # noqa: E402
from lth_tf.errors import UserError  # noqa: E402


def quiet(*args):
    pass


class Log(list):
    def __call__(self, msg):
        self.append(str(msg))

    def text(self):
        return "\n".join(self)


def cfg(tmp_path, **kw):
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    return DataConfig(**kw)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "is_online", lambda host, timeout=3.0: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def imdb_dir(tmp_path):
    return fx.make_acl_imdb(str(tmp_path / "raw"), per_folder=10)


def labels_by_uid(data) -> dict:
    """{first token of the text (the fixtures' unique id): label}, over all three splits, read from the cached
    corpus (which keeps every token; the vocabulary only has training tokens)."""
    cache = data.stats["cache"]
    corpus = prepare.load_corpus(cache["path"][:-len(".npz")], cache["key"])
    out = {}
    for i in range(3):
        s = corpus.split(i)
        out.update((corpus.tokens[s.token_ids[a]], int(y)) for a, y in zip(s.offsets[:-1], s.labels))
    return out


def keep_stat(path: str):
    """Restore path's size-independent metadata (mtime) after a change: the old identity could not see it."""
    st = os.stat(path)
    return lambda: os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ------------------------------------------------------------------------- 5. cache: damage, atomic ---
def _cache_npz(tmp_path):
    [name] = [f for f in os.listdir(tmp_path / "cache" / "data") if f.endswith(".npz")]
    return str(tmp_path / "cache" / "data" / name)


@pytest.mark.parametrize("damage", ["empty", "garbage", "no_meta", "bad_meta", "foreign_key", "truncated"])
def test_damaged_cache_is_a_miss_and_is_rebuilt(tmp_path, imdb_dir, damage):
    c = cfg(tmp_path, data_dir=imdb_dir)
    a = prepare_data(c, 0, log=quiet)
    path = _cache_npz(tmp_path)
    if damage == "empty":
        open(path, "wb").close()
    elif damage == "garbage":
        fx.write(path, b"\x00not a zip file at all" * 50)
    elif damage == "no_meta":
        np.savez(path, ids=np.zeros(3, np.int32))
    elif damage == "bad_meta":
        np.savez(path, meta=np.frombuffer(b"{not json", np.uint8))
    elif damage == "foreign_key":
        np.savez(path, meta=np.frombuffer(b'{"key": "someone else"}', np.uint8))
    else:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 100)
    log = Log()
    b = prepare_data(c, 0, log=log)
    assert not b.stats["cache"]["hit"] and b.vocab == a.vocab
    for s in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, s).token_ids, getattr(b, s).token_ids)
        assert np.array_equal(getattr(a, s).labels, getattr(b, s).labels)
    if damage != "foreign_key":
        assert "; rebuilding it" in log.text()  # said, not silent
    assert prepare_data(c, 0, log=quiet).stats["cache"]["hit"]


def test_cache_is_written_through_lth_tf_atomic(tmp_path, imdb_dir, monkeypatch):
    assert not hasattr(prepare, "atomic_write")  # one implementation: lth_tf.atomic
    written = []
    original = atomic.atomic_path

    def recording(path):
        written.append(os.path.basename(path))
        return original(path)

    monkeypatch.setattr(atomic, "atomic_path", recording)
    prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=quiet)
    assert sorted(w.rsplit(".", 1)[1] for w in written) == ["json", "npz"]
    assert not [f for f in os.listdir(tmp_path / "cache" / "data") if f.startswith(atomic.TMP_PREFIX)]
