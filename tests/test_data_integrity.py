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
from lth_tf.data import cache as data_cache  # noqa: E402
from lth_tf.data import prepare, prepare_data, sources  # noqa: E402
from lth_tf.errors import UserError  # noqa: E402


def quiet(*args):
    pass


Log, cfg = fx.Log, fx.data_config


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
    corpus = data_cache.load_corpus(cache["path"][:-len(".npz")], cache["key"])
    out = {}
    for i in range(3):
        s = corpus.split(i)
        out.update((corpus.tokens[s.token_ids[a]], int(y)) for a, y in zip(s.offsets[:-1], s.labels))
    return out


def keep_stat(path: str):
    """Restore path's size-independent metadata (mtime) after a change: the old identity could not see it."""
    st = os.stat(path)
    return lambda: os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ------------------------------------------------------------------------------ 1. identity by content ---
def test_moving_a_review_from_pos_to_neg_changes_the_labels(tmp_path, imdb_dir):
    c = cfg(tmp_path, data_dir=imdb_dir)
    before = prepare_data(c, 0, log=quiet)
    assert labels_by_uid(before)["doctrainpos0"] == 1
    pos, neg = os.path.join(imdb_dir, "train", "pos"), os.path.join(imdb_dir, "train", "neg")
    name = next(n for n in os.listdir(pos) if n.startswith("0_"))
    os.rename(os.path.join(pos, name), os.path.join(neg, name))  # same count, total size and newest mtime
    after = prepare_data(c, 0, log=quiet)
    assert not after.stats["cache"]["hit"]  # not the stale cache
    assert labels_by_uid(after)["doctrainpos0"] == 0
    assert np.bincount(np.concatenate([s.labels for s in (after.train, after.valid, after.test)])).tolist() \
        == [21, 19]
    assert prepare_data(c, 0, log=quiet).stats["cache"]["hit"]


def test_same_size_edit_with_old_mtime_is_seen(tmp_path, imdb_dir):
    c = cfg(tmp_path, data_dir=imdb_dir)
    prepare_data(c, 0, log=quiet)
    path = os.path.join(imdb_dir, "test", "neg", sorted(os.listdir(os.path.join(imdb_dir, "test", "neg")))[0])
    restore = keep_stat(path)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(b"X" + data[1:])
    restore()
    assert not prepare_data(c, 0, log=quiet).stats["cache"]["hit"]
    os.utime(path)  # touching alone changes nothing: still a hit
    assert prepare_data(c, 0, log=quiet).stats["cache"]["hit"]


def test_archive_rewritten_with_a_moved_review_is_seen(tmp_path, imdb_dir):
    archive = str(tmp_path / "aclImdb.tar")
    fx.make_tar(imdb_dir, archive)
    c = cfg(tmp_path, data_dir=archive)
    before = prepare_data(c, 0, log=quiet)
    restore = keep_stat(archive)
    size = os.path.getsize(archive)
    pos, neg = os.path.join(imdb_dir, "test", "pos"), os.path.join(imdb_dir, "test", "neg")
    name = next(n for n in os.listdir(pos) if n.startswith("3_"))
    os.rename(os.path.join(pos, name), os.path.join(neg, name))
    fx.make_tar(imdb_dir, archive)
    restore()
    assert os.path.getsize(archive) == size  # a plain tar: same size, same mtime, other labels
    after = prepare_data(c, 0, log=quiet)
    assert not after.stats["cache"]["hit"]
    assert labels_by_uid(before)["doctestpos3"] == 1 and labels_by_uid(after)["doctestpos3"] == 0


def test_csv_label_flip_with_same_size_and_mtime_is_seen(tmp_path):
    rows = [(f"review{i} " + ("great fun" if i % 2 else "dull mess"), "pos" if i % 2 else "neg")
            for i in range(40)]
    path = fx.make_imdb_csv(str(tmp_path / "imdb.csv"), rows)
    c = cfg(tmp_path, data_dir=path)
    assert labels_by_uid(prepare_data(c, 0, log=quiet))["review1"] == 1
    restore = keep_stat(path)
    rows[1] = (rows[1][0], "neg")  # same length as "pos"
    fx.make_imdb_csv(path, rows)
    restore()
    after = prepare_data(c, 0, log=quiet)
    assert not after.stats["cache"]["hit"] and labels_by_uid(after)["review1"] == 0


def test_ag_news_class_change_is_seen(tmp_path):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=8)
    train = os.path.join(folder, "train.csv")
    c = cfg(tmp_path, dataset="ag_news", data_dir=folder)
    prepare_data(c, 0, log=quiet)
    restore = keep_stat(train)
    rows = fx.ag_rows(8, 1)
    i = next(k for k, r in enumerate(rows) if r[0] == "1")
    rows[i][0] = "2"  # one World row becomes Sports: same size
    fx.make_ag_csv(train, rows)
    restore()
    assert not prepare_data(c, 0, log=quiet).stats["cache"]["hit"]


def test_every_source_identity_hashes_content(tmp_path, imdb_dir):
    def digest(source):
        return source.identity()["sha256"]

    folder = sources.AclImdbDir("imdb", imdb_dir)
    archive = sources.AclImdbArchive("imdb", fx.make_tar(imdb_dir, str(tmp_path / "a.tar.gz")))
    csv_path = fx.make_imdb_csv(str(tmp_path / "x.csv"), [("good", "positive"), ("bad", "negative")])
    ag = fx.make_ag_folder(str(tmp_path / "ag"), per_class=2)
    ag_src = sources.AgNewsCsv("ag_news", ag, os.path.join(ag, "train.csv"), os.path.join(ag, "test.csv"),
                               os.path.join(ag, "classes.txt"))
    tfds_dir = tmp_path / "tfds" / "imdb_reviews" / "plain_text" / "1.0.0"
    tfds_dir.mkdir(parents=True)
    (tfds_dir / "dataset_info.json").write_text("{}")
    (tfds_dir / "imdb_reviews-train.tfrecord-00000-of-00001").write_bytes(b"records")
    tfds_src = sources.TfdsPrepared("imdb", str(tfds_dir))
    for source in (folder, archive, sources.ImdbCsv("imdb", csv_path), ag_src, tfds_src,
                   sources.resolve_source("imdb_sample", "")):
        assert len(digest(source)) == 64
    # a change in any labelled byte (here: a tfds shard, a classes.txt) changes the digest
    before = digest(tfds_src)
    (tfds_dir / "imdb_reviews-train.tfrecord-00000-of-00001").write_bytes(b"recordz")
    assert digest(tfds_src) != before
    before = digest(ag_src)
    fx.write(os.path.join(ag, "classes.txt"), b"World\nSports\nBusiness\nSci-Tech\n")
    assert digest(ag_src) != before


def test_data_changed_while_being_read_is_refused(tmp_path, imdb_dir, monkeypatch):
    original = sources.AclImdbDir.read

    def read_then_change(self, log=print):
        raw = original(self, log)
        fx.write(os.path.join(imdb_dir, "train", "pos", "0_7.txt"), b"changed meanwhile")
        return raw

    monkeypatch.setattr(sources.AclImdbDir, "read", read_then_change)
    with pytest.raises(UserError, match="changed while"):
        prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=quiet)
    assert not os.path.isdir(tmp_path / "cache" / "data") or not os.listdir(tmp_path / "cache" / "data")


# ---------------------------------------------------------------------------- 2. a class is missing ---
@pytest.mark.parametrize("split", ["study", "official"])
@pytest.mark.parametrize("missing", ["train/neg", "test/pos"])
def test_acl_imdb_folder_missing_a_class_folder(tmp_path, imdb_dir, split, missing):
    shutil.rmtree(os.path.join(imdb_dir, missing))
    with pytest.raises(UserError) as e:
        prepare_data(cfg(tmp_path, data_dir=imdb_dir, split=split), 0, log=quiet)
    msg = str(e.value)
    assert os.path.join(imdb_dir, missing) in msg and "\n" not in msg
    assert "train/pos, train/neg, test/pos and test/neg" in msg


def test_acl_imdb_folder_with_an_empty_class_folder(tmp_path, imdb_dir):
    folder = os.path.join(imdb_dir, "train", "neg")
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    with pytest.raises(UserError, match=rf"{folder}: no reviews"):
        prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=quiet)


@pytest.mark.parametrize("missing", ["train/neg", "test/pos"])
def test_acl_imdb_archive_missing_a_class_folder(tmp_path, imdb_dir, missing):
    shutil.rmtree(os.path.join(imdb_dir, missing))
    archive = fx.make_tar(imdb_dir, str(tmp_path / "aclImdb.tar.gz"))
    with pytest.raises(UserError, match=rf"aclImdb\.tar\.gz: no reviews in aclImdb/{missing}/"):
        prepare_data(cfg(tmp_path, data_dir=archive), 0, log=quiet)


def test_tar_without_top_folder_missing_class(tmp_path, imdb_dir):
    shutil.rmtree(os.path.join(imdb_dir, "test", "neg"))
    out = str(tmp_path / "flat.tar.gz")
    with tarfile.open(out, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(os.path.join(imdb_dir, split), arcname=split)
    with pytest.raises(UserError, match="no reviews in test/neg/"):
        prepare_data(cfg(tmp_path, data_dir=out), 0, log=quiet)


def test_review_files_with_other_names_are_reported(tmp_path):
    extra = {"train/pos/notes.txt": b"not a review", "test/neg/12.txt": b"no rating"}
    folder = fx.make_acl_imdb(str(tmp_path / "raw"), per_folder=5, extra=extra)
    for data_dir in (folder, fx.make_tar(folder, str(tmp_path / "a.tar"))):
        d = prepare_data(cfg(tmp_path, data_dir=data_dir), 0, log=quiet)
        assert len(d.train) + len(d.valid) + len(d.test) == 20
        sk = d.stats["skipped"]
        assert sk["count"] == 2 and any("notes.txt" in e for e in sk["examples"])


def test_imdb_csv_with_one_class_only(tmp_path):
    path = fx.make_imdb_csv(str(tmp_path / "imdb.csv"), [(f"good {i}", "positive") for i in range(10)])
    with pytest.raises(UserError, match=r"imdb\.csv: no examples of class neg"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=quiet)


@pytest.mark.parametrize("part", ["train", "test"])
def test_ag_news_file_missing_a_class(tmp_path, part):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=8)
    rows = [r for r in fx.ag_rows(8, 1) if r[0] != "2"]
    fx.make_ag_csv(os.path.join(folder, f"{part}.csv"), rows)
    with pytest.raises(UserError, match=rf"{part}\.csv: no {part} examples of class Sports"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=quiet)


def test_class_whose_texts_are_all_blank(tmp_path):
    path = fx.make_imdb_csv(str(tmp_path / "imdb.csv"), [("good", "positive"), ("<br /> ", "negative")] * 5)
    with pytest.raises(UserError, match="no examples of class neg"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=quiet)


# --------------------------------------------------------------------------------- 4. CSV messages ---
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_imdb_csv_with_bom(tmp_path, suffix):
    rows = [(f"review {i} " + ("great" if i % 2 else "dull"), "positive" if i % 2 else "negative")
            for i in range(50)]
    path = fx.make_imdb_csv(str(tmp_path / "plain.csv"), rows)
    data = BOM + open(path, "rb").read()
    bom_path = fx.write(str(tmp_path / "bom" / f"IMDB Dataset.csv{suffix}"), data)
    for data_dir in (bom_path, os.path.dirname(bom_path)):
        d = prepare_data(cfg(tmp_path, data_dir=data_dir), 0, log=quiet)
        assert d.class_names == ["neg", "pos"]
        assert (len(d.train), len(d.valid), len(d.test)) == (28, 12, 10)
        assert np.bincount(d.test.labels).tolist() == [5, 5]


def test_ag_news_csv_and_classes_with_bom(tmp_path):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=8)
    for name in ("train.csv", "test.csv", "classes.txt"):
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        fx.write(path, BOM + data)
    d = prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=quiet)
    assert d.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert np.bincount(d.test.labels).tolist() == [2, 2, 2, 2]
    first = fx.ag_rows(2, 2)[0]  # the first row of test.csv, the one behind the BOM
    assert labels_by_uid(d)[first[1].split()[0]] == int(first[0]) - 1


def test_imdb_sample_style_csv_with_bom(tmp_path):
    raw = sources.read_sample_csv(fx.write(str(tmp_path / "s.csv"), BOM + b"label,text\npos,good\nneg,bad\n"),
                                  sources.IMDB_CLASSES)
    assert raw.parts["all"][1].tolist() == [1, 0]


@pytest.mark.parametrize("name", ["imdb.csv", "IMDB Dataset.csv.gz", "bom.csv"])
def test_empty_imdb_csv_says_empty(tmp_path, name):
    path = fx.write(str(tmp_path / name), BOM if name == "bom.csv" else b"")
    with pytest.raises(UserError, match="is empty") as e:
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=quiet)
    assert name in str(e.value) and "review,sentiment" in str(e.value)


def test_imdb_csv_with_another_header_says_what_it_found(tmp_path):
    path = fx.write(str(tmp_path / "imdb.csv"), b"text,label\nhello,positive\n")
    with pytest.raises(UserError, match=r"imdb\.csv:1: expected the header review,sentiment, found 'text,label'"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=quiet)


def test_imdb_csv_with_only_a_header(tmp_path):
    path = fx.write(str(tmp_path / "imdb.csv"), b"review,sentiment\n")
    with pytest.raises(UserError, match=r"imdb\.csv: only the header, no reviews"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=quiet)


@pytest.mark.parametrize("content", [b"", BOM, b"\n"])
def test_empty_ag_news_csv_says_empty(tmp_path, content):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=4)
    fx.write(os.path.join(folder, "test.csv"), content)
    with pytest.raises(UserError, match=r"test\.csv: the file is empty"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=quiet)


def test_ag_news_csv_with_only_a_header(tmp_path):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=4)
    fx.write(os.path.join(folder, "train.csv"), b"Class Index,Title,Description\n")
    with pytest.raises(UserError, match=r"train\.csv: only a header, no rows"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=quiet)


@pytest.mark.parametrize("value", ["0", "5", "-1", "\u00b2", "x"])
def test_ag_news_class_out_of_range(tmp_path, value):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=4)
    fx.write(os.path.join(folder, "train.csv"),
             f'"1","a","b"\n"2","c","d"\n"{value}","e","f"\n'.encode())
    with pytest.raises(UserError, match=r"train\.csv:3: class .* is not one of 1\.\.4"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=quiet)


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
    assert not any(hasattr(m, "atomic_write") for m in (prepare, data_cache))  # one implementation: lth_tf.atomic
    written = []
    original = atomic.atomic_path

    def recording(path):
        written.append(os.path.basename(path))
        return original(path)

    monkeypatch.setattr(atomic, "atomic_path", recording)
    prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=quiet)
    assert sorted(w.rsplit(".", 1)[1] for w in written) == ["json", "npz"]
    assert not [f for f in os.listdir(tmp_path / "cache" / "data") if f.startswith(atomic.TMP_PREFIX)]


# ------------------------------------------------------------------------------ 6. the cache version ---
def test_cache_version_is_in_the_key(tmp_path, imdb_dir, monkeypatch):
    assert data_cache.CACHE_VERSION >= 2  # bumped with the content identity: version-1 caches are never read
    c = cfg(tmp_path, data_dir=imdb_dir)
    prepare_data(c, 0, log=quiet)
    monkeypatch.setattr(data_cache, "CACHE_VERSION", data_cache.CACHE_VERSION + 1)
    assert not prepare_data(c, 0, log=quiet).stats["cache"]["hit"]


def test_identity_is_in_the_stats(tmp_path, imdb_dir):
    d = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=quiet)
    assert d.stats["cache"]["source_sha256"] == sources.AclImdbDir("imdb", imdb_dir).identity()["sha256"]
    assert "source_hash_s" in d.stats["timings"]
