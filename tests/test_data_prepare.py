"""prepare_data: sources, splits, vocabulary, cache, bad input, offline behaviour (small fixtures only)."""
import os
import sys
import tarfile
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import data_fixtures as fx  # noqa: E402

from lth_tf.config import DataConfig  # noqa: E402
from lth_tf.data import cache as data_cache  # noqa: E402
from lth_tf.data import EncodedSplit, prepare_data, sources, splits  # noqa: E402
from lth_tf.errors import UserError  # noqa: E402


Log, cfg = fx.Log, fx.data_config


def uids(data, split):
    """The first token of every text of a split (the fixtures' unique document id), read from the cached
    corpus, which keeps every token (the vocabulary only has training tokens)."""
    cache = data.stats["cache"]
    corpus = data_cache.load_corpus(cache["path"][:-len(".npz")], cache["key"])
    s = corpus.split(("train", "valid", "test").index(split))
    return [corpus.tokens[s.token_ids[a]] for a in s.offsets[:-1]]


@pytest.fixture
def imdb_dir(tmp_path):
    return fx.make_acl_imdb(str(tmp_path / "raw"), per_folder=40)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may reach the network or a real ~/tensorflow_datasets."""
    monkeypatch.setattr(sources, "is_online", lambda host, timeout=3.0: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# --------------------------------------------------------------------------------------------- splits ---
def test_imdb_study_split_sizes_balance_disjoint(tmp_path, imdb_dir):
    d = prepare_data(cfg(tmp_path, data_dir=imdb_dir, vocab_size=0), 0, log=Log())
    # 160 pooled reviews: 20% test (32), then 30% of the remaining 128 for validation (38)
    assert (len(d.train), len(d.valid), len(d.test)) == (90, 38, 32)
    assert d.class_names == ["neg", "pos"] and d.num_classes == 2
    assert np.bincount(d.test.labels).tolist() == [16, 16]
    assert np.bincount(d.valid.labels).tolist() == [19, 19]
    assert np.bincount(d.train.labels).tolist() == [45, 45]
    ids = {split: uids(d, split) for split in ("train", "valid", "test")}
    assert sum(len(set(v)) for v in ids.values()) == len(set().union(*ids.values())) == 160  # disjoint, complete
    for split in ("train", "valid", "test"):  # labels agree with the folders the reviews came from
        assert [("pos" in u) for u in ids[split]] == (getattr(d, split).labels == 1).tolist()
    # both official parts are pooled into every split
    assert all(any(p in u for u in ids[split]) for p in ("doctrain", "doctest") for split in ids)


def test_official_split(tmp_path, imdb_dir):
    d = prepare_data(cfg(tmp_path, data_dir=imdb_dir, split="official"), 0, log=Log())
    assert (len(d.train), len(d.valid), len(d.test)) == (56, 24, 80)
    assert all(u.startswith("doctrain") for u in uids(d, "train"))
    assert np.bincount(d.valid.labels).tolist() == [12, 12]
    assert np.bincount(d.test.labels).tolist() == [40, 40]


def test_split_is_deterministic_and_follows_the_seed(tmp_path, imdb_dir):
    a = prepare_data(cfg(tmp_path, data_dir=imdb_dir, split_seed=1), 0, log=Log())
    b = prepare_data(cfg(tmp_path / "other", data_dir=imdb_dir, split_seed=1), 0, log=Log())
    assert not b.stats["cache"]["hit"]  # built twice, independently
    for s in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, s).token_ids, getattr(b, s).token_ids)
        assert np.array_equal(getattr(a, s).labels, getattr(b, s).labels)
    c = prepare_data(cfg(tmp_path, data_dir=imdb_dir, split_seed=2), 0, log=Log())
    assert set(uids(a, "train")) != set(uids(c, "train"))
    # the test set depends on the seed only, not on valid_fraction
    e = prepare_data(cfg(tmp_path, data_dir=imdb_dir, split_seed=1, valid_fraction=0.1), 0, log=Log())
    assert set(uids(a, "test")) == set(uids(e, "test"))
    assert len(e.valid) == 13


def test_stratified_split_exact_counts():
    labels = np.array([0] * 25000 + [1] * 25000)
    kept, held = splits.stratified_split(labels, 0.2, np.random.default_rng(0), 2)
    assert len(held) == 10000 and np.bincount(labels[held]).tolist() == [5000, 5000]
    assert len(set(kept) | set(held)) == 50000
    labels = np.array([0] * 7 + [1] * 3 + [2] * 1)
    kept, held = splits.stratified_split(labels, 0.3, np.random.default_rng(0), 3)
    assert len(held) == 3 and len(kept) == 8


def test_valid_fraction_zero_gives_empty_valid(tmp_path, imdb_dir):
    d = prepare_data(cfg(tmp_path, data_dir=imdb_dir, valid_fraction=0.0), 0, log=Log())
    assert len(d.valid) == 0 and len(d.train) == 128


# -------------------------------------------------------------------------------------------- sources ---
@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2"])
def test_archives_give_the_same_data_as_the_folder(tmp_path, imdb_dir, suffix):
    folder = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=Log())
    archive = fx.make_tar(imdb_dir, str(tmp_path / f"aclImdb_v1{suffix}"))
    for data_dir in (archive, os.path.dirname(archive)):  # the file, or the folder holding it
        d = prepare_data(cfg(tmp_path, data_dir=data_dir), 0, log=Log())
        assert d.stats["source_kind"] == "aclImdb archive"
        assert d.vocab == folder.vocab
        for s in ("train", "valid", "test"):
            assert np.array_equal(getattr(d, s).token_ids, getattr(folder, s).token_ids)


def test_folder_holding_aclimdb(tmp_path, imdb_dir):
    d = prepare_data(cfg(tmp_path, data_dir=os.path.dirname(imdb_dir)), 0, log=Log())
    assert d.stats["source_kind"] == "aclImdb folder" and len(d.test) == 32


def test_imdb_csv(tmp_path):
    rows = [(f"review {i} " + ("great fun" if i % 2 else "dull mess"), "positive" if i % 2 else "negative")
            for i in range(50)]
    path = fx.make_imdb_csv(str(tmp_path / "IMDB Dataset.csv.gz"), rows)
    for data_dir in (path, str(tmp_path)):
        d = prepare_data(cfg(tmp_path, data_dir=data_dir), 0, log=Log())
        assert d.stats["source_kind"] == "IMDb CSV"
        assert (len(d.train), len(d.valid), len(d.test)) == (28, 12, 10)
        assert np.bincount(d.test.labels).tolist() == [5, 5]
    with pytest.raises(UserError, match="official"):
        prepare_data(cfg(tmp_path, data_dir=path, split="official"), 0, log=Log())


@pytest.mark.parametrize("gz", [False, True])
def test_ag_news_folder(tmp_path, gz):
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=20, gz=gz)
    d = prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=Log())
    assert d.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert (len(d.train), len(d.valid), len(d.test)) == (56, 24, 20)
    assert np.bincount(d.valid.labels).tolist() == [6, 6, 6, 6]
    assert np.bincount(d.test.labels).tolist() == [5, 5, 5, 5]


def test_ag_news_archive_and_text_cleaning(tmp_path):
    folder = fx.make_ag_folder(str(tmp_path / "ag_news_csv"), per_class=8)
    rows = fx.ag_rows(8, 1)
    rows[0] = ["3", "Oil hits \\$47", "A second\\team of rocketeers\\\\Next paragraph\\network"]
    fx.make_ag_csv(os.path.join(folder, "train.csv"), rows)
    archive = fx.make_tar(folder, str(tmp_path / "ag_news_csv.tar.gz"))
    d = prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=archive, valid_fraction=0.0, vocab_size=0), 0,
                     log=Log())
    assert d.stats["source_kind"] == "AG News archive"
    texts = d.train.texts(d.vocab)
    assert "Oil hits $ 47 A second team of rocketeers Next paragraph network" in texts
    assert sources.clean_ag_news("a\\nb \\$5\\\\c") == "a nb $5 c"


def test_ag_news_only_test_csv(tmp_path):
    fx.make_ag_csv(str(tmp_path / "ag" / "test.csv.gz"), fx.ag_rows(2))
    t = time.perf_counter()
    with pytest.raises(UserError, match=r"train\.csv is missing"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=str(tmp_path / "ag")), 0, log=Log())
    assert time.perf_counter() - t < 2


def test_samples_need_no_data_dir(tmp_path):
    d = prepare_data(cfg(tmp_path, dataset="imdb_sample", data_dir="/nonexistent"), 25000, log=Log())
    assert (len(d.train), len(d.valid), len(d.test)) == (1680, 720, 600)
    assert np.bincount(d.train.labels).tolist() == [840, 840]
    assert d.stats["source_kind"] == "packaged sample"
    d = prepare_data(cfg(tmp_path, dataset="ag_news_sample"), 25000, log=Log())
    assert (len(d.train), len(d.valid), len(d.test)) == (1120, 480, 400)
    assert np.bincount(d.test.labels).tolist() == [100] * 4
    assert d.class_names == ["World", "Sports", "Business", "Sci/Tech"]


def test_samples_are_small():
    total = sum(os.path.getsize(os.path.join(sources.SAMPLES_DIR, f)) for f in os.listdir(sources.SAMPLES_DIR)
                if f.endswith(".csv.gz"))
    assert total < 3_000_000


def test_prepared_tfds_directory(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from lth_tf.keras import tf  # noqa: F401
    texts = [f"text {i} " + ("good" if i % 2 else "bad") for i in range(20)]
    labels = [i % 2 for i in range(20)]
    split = {"text": texts, "label": labels}
    tfds.dataset_builders.store_as_tfds_dataset(
        name="imdb_reviews", version="1.0.0", data_dir=str(tmp_path / "tfds"),
        features=tfds.features.FeaturesDict({"text": tfds.features.Text(),
                                             "label": tfds.features.ClassLabel(names=["neg", "pos"])}),
        split_datasets={"train": tf.data.Dataset.from_tensor_slices(split),
                        "test": tf.data.Dataset.from_tensor_slices(split)})
    d = prepare_data(cfg(tmp_path, data_dir=str(tmp_path / "tfds")), 0, log=Log())
    assert d.stats["source_kind"] == "tensorflow-datasets"
    assert (len(d.train), len(d.valid), len(d.test)) == (22, 10, 8)
    assert d.class_names == ["neg", "pos"]


# ------------------------------------------------------------------------------------------ vocabulary ---
def test_vocab_from_training_split_only(tmp_path, imdb_dir):
    full = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 0, log=Log())
    assert full.vocab[:2] == ["<pad>", "<unk>"]
    assert not (full.train.token_ids == 1).any()  # every training token is in the full vocabulary
    assert (full.valid.token_ids == 1).any() and (full.test.token_ids == 1).any()  # their ids are unseen
    counts = np.bincount(full.train.token_ids, minlength=len(full.vocab))
    assert np.array_equal(counts[2:], full.vocab_counts[2:]) and (counts[2:] > 0).all()
    # most frequent first, ties by token string
    keys = [(-c, w) for w, c in zip(full.vocab[2:], counts[2:])]
    assert keys == sorted(keys)
    small = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 5, log=Log())
    assert small.vocab == full.vocab[:7]
    assert small.vocab_counts[1] == counts[7:].sum()  # <unk> counts every dropped occurrence
    # same texts, remapped: ids >= 7 became <unk>
    expect = np.where(full.train.token_ids >= 7, 1, full.train.token_ids)
    assert np.array_equal(small.train.token_ids, expect)


def test_stats(tmp_path, imdb_dir):
    log = Log()
    d = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 10, log=log)
    s = d.stats
    assert s["counts"] == {"train": 90, "valid": 38, "test": 32}
    for split in ("train", "valid", "test"):
        tl = s["token_lengths"][split]
        assert set(tl) >= {"mean", "median", "p90", "p99", "max"}
        assert tl["max"] == getattr(d, split).lengths().max()
    assert s["vocab"]["size"] == 12 and 0 < s["vocab"]["train_token_coverage"] < 1
    assert set(s["timings"]) >= {"read_s", "tokenize_s", "total_s"}
    assert "train 90 / valid 38 / test 32" in log.text()


def test_encoded_split_take():
    s = EncodedSplit(np.arange(10, dtype=np.int32), np.array([0, 3, 3 + 4, 10]), np.array([0, 1, 0], np.int32))
    assert len(s) == 3 and s.lengths().tolist() == [3, 4, 3]
    t = s.take([2, 0])
    assert t.token_ids.tolist() == [7, 8, 9, 0, 1, 2] and t.offsets.tolist() == [0, 3, 6]
    assert t.labels.tolist() == [0, 0]
    assert len(s.take(np.array([], np.int64))) == 0
    assert s.take(np.array([False, True, False])).token_ids.tolist() == [3, 4, 5, 6]


# ------------------------------------------------------------------------------------------------ cache ---
def test_cache_hit_is_identical(tmp_path, imdb_dir):
    a = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 20, log=Log())
    log = Log()
    b = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 20, log=log)
    assert not a.stats["cache"]["hit"] and b.stats["cache"]["hit"]
    assert "from cache" in log.text()
    assert a.vocab == b.vocab and a.class_names == b.class_names
    for s in ("train", "valid", "test"):
        for f in ("token_ids", "offsets", "labels"):
            assert np.array_equal(getattr(getattr(a, s), f), getattr(getattr(b, s), f))
    assert a.stats["token_lengths"] == b.stats["token_lengths"]
    cache_files = sorted(os.listdir(tmp_path / "cache" / "data"))
    assert [f.rsplit(".", 1)[1] for f in cache_files] == ["json", "npz"]
    # another vocabulary size reuses the tokenisation
    c = prepare_data(cfg(tmp_path, data_dir=imdb_dir), 5, log=Log())
    assert c.stats["cache"]["hit"] and c.vocab == a.vocab[:7]


def test_cache_key_follows_the_settings(tmp_path, imdb_dir):
    base = cfg(tmp_path, data_dir=imdb_dir)
    identity = sources.resolve_source("imdb", imdb_dir).identity()
    key = data_cache.cache_key(base, identity)[0]
    for change in ({"split_seed": 1}, {"valid_fraction": 0.2}, {"split": "official"}):
        assert data_cache.cache_key(DataConfig(**{**base.__dict__, **change}), identity)[0] != key
    assert data_cache.cache_key(DataConfig(**{**base.__dict__, "cache_dir": "/x", "max_len": 9}), identity)[0] == key
    prepare_data(base, 0, log=Log())
    # changing a source file changes its identity (its content: same size and mtime here): the cache is rebuilt
    folder = os.path.join(imdb_dir, "train", "pos")
    path = os.path.join(folder, sorted(os.listdir(folder))[0])
    st = os.stat(path)
    text = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(text[::-1])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not prepare_data(base, 0, log=Log()).stats["cache"]["hit"]
    assert prepare_data(base, 0, log=Log()).stats["cache"]["hit"]
    # touching it alone (no content change) keeps the cache: the identity is the content, not the mtime
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prepare_data(base, 0, log=Log()).stats["cache"]["hit"]


def test_cache_write_is_atomic(tmp_path, imdb_dir, monkeypatch):
    c = cfg(tmp_path, data_dir=imdb_dir)

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(c, 0, log=Log())
    assert os.listdir(tmp_path / "cache" / "data") == []  # no half file, no temporary file
    monkeypatch.undo()
    monkeypatch.setattr(sources, "is_online", lambda host, timeout=3.0: False)
    assert not prepare_data(c, 0, log=Log()).stats["cache"]["hit"]
    assert prepare_data(c, 0, log=Log()).stats["cache"]["hit"]


def test_corrupt_cache_is_rebuilt(tmp_path, imdb_dir):
    c = cfg(tmp_path, data_dir=imdb_dir)
    a = prepare_data(c, 0, log=Log())
    path = a.stats["cache"]["path"]
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    b = prepare_data(c, 0, log=Log())
    assert not b.stats["cache"]["hit"] and b.vocab == a.vocab
    assert prepare_data(c, 0, log=Log()).stats["cache"]["hit"]


def test_unwritable_cache_dir_still_works(tmp_path, imdb_dir):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = Log()
    d = prepare_data(cfg(tmp_path, data_dir=imdb_dir, cache_dir=str(blocker)), 0, log=log)
    assert len(d.test) == 32 and "cannot write the cache" in log.text()


# -------------------------------------------------------------------------------------------- bad input ---
def test_unknown_dataset(tmp_path):
    with pytest.raises(UserError, match="--dataset=mnist"):
        prepare_data(cfg(tmp_path, dataset="mnist"), 0, log=Log())


def test_bad_flags(tmp_path, imdb_dir):
    with pytest.raises(UserError, match="--valid_fraction"):
        prepare_data(cfg(tmp_path, data_dir=imdb_dir, valid_fraction=1.5), 0, log=Log())
    with pytest.raises(UserError, match="--split"):
        prepare_data(cfg(tmp_path, data_dir=imdb_dir, split="random"), 0, log=Log())
    with pytest.raises(UserError, match="--data_dir=/no/such"):
        prepare_data(cfg(tmp_path, data_dir="/no/such/place"), 0, log=Log())


def test_csv_wrong_field_count(tmp_path):
    path = fx.write(str(tmp_path / "imdb.csv"),
                    b'review,sentiment\n"good film",positive\n"bad film",negative,extra\n')
    with pytest.raises(UserError, match=r"imdb\.csv:3: expected 2 fields"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=Log())
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=4)
    fx.write(os.path.join(folder, "train.csv"), b'"1","title","desc"\n"2","only two"\n')
    with pytest.raises(UserError, match=r"train\.csv:2: expected 3 fields"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=Log())


def test_label_outside_the_classes(tmp_path):
    path = fx.write(str(tmp_path / "imdb.csv"), b'review,sentiment\n"good",positive\n"meh",neutral\n')
    with pytest.raises(UserError, match=r"imdb\.csv:3: sentiment 'neutral'"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=Log())
    folder = fx.make_ag_folder(str(tmp_path / "ag"), per_class=4)
    fx.write(os.path.join(folder, "test.csv"), b'"1","a","b"\n"1","a","b"\n"5","title","desc"\n')
    with pytest.raises(UserError, match=r"test\.csv:3: class '5' is not one of 1\.\.4"):
        prepare_data(cfg(tmp_path, dataset="ag_news", data_dir=folder), 0, log=Log())


def test_multiline_csv_records_report_their_first_line(tmp_path):
    path = fx.write(str(tmp_path / "imdb.csv"),
                    b'review,sentiment\n"two\nlines",positive\n"x",negative\n"y",bad\n')
    with pytest.raises(UserError, match=r"imdb\.csv:5: "):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=Log())


def test_non_utf8_bytes(tmp_path):
    bad = {"train/pos/999_9.txt": b"fine words then \xff\xfe broken"}
    folder = fx.make_acl_imdb(str(tmp_path / "raw"), per_folder=3, extra=bad)
    with pytest.raises(UserError, match=r"999_9\.txt:1: not UTF-8 \(byte 0xff at column 17\)"):
        prepare_data(cfg(tmp_path, data_dir=folder), 0, log=Log())
    archive = fx.make_tar(folder, str(tmp_path / "a.tar.gz"))
    with pytest.raises(UserError, match=r"a\.tar\.gz:aclImdb/train/pos/999_9\.txt:1: not UTF-8"):
        prepare_data(cfg(tmp_path, data_dir=archive), 0, log=Log())
    path = fx.write(str(tmp_path / "imdb.csv"), b'review,sentiment\n"ok",positive\n"caf\xe9",negative\n')
    with pytest.raises(UserError, match=r"imdb\.csv:3: not UTF-8"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=Log())


def test_empty_texts_are_skipped_and_reported(tmp_path):
    extra = {"train/pos/900_9.txt": b"", "test/neg/901_1.txt": b"  <br /><br />\n "}
    folder = fx.make_acl_imdb(str(tmp_path / "raw"), per_folder=10, extra=extra)
    log = Log()
    d = prepare_data(cfg(tmp_path, data_dir=folder), 0, log=log)
    assert len(d.train) + len(d.valid) + len(d.test) == 40
    sk = d.stats["skipped"]
    assert sk["count"] == 2 and sum(sk["reasons"].values()) == 2
    assert any("900_9.txt" in e for e in sk["examples"])
    assert "skipped 2 texts" in log.text()
    again = prepare_data(cfg(tmp_path, data_dir=folder), 0, log=Log())  # a cache hit still reports them
    assert again.stats["cache"]["hit"] and again.stats["skipped"]["count"] == 2


def test_truncated_archive(tmp_path, imdb_dir):
    for suffix in (".tar.gz", ".tar.xz", ".tar"):
        archive = fx.make_tar(imdb_dir, str(tmp_path / f"aclImdb{suffix}"))
        with open(archive, "r+b") as f:
            f.truncate(os.path.getsize(archive) // 2)
        with pytest.raises(UserError, match=rf"aclImdb{suffix.replace('.', '[.]')}: truncated or corrupt"):
            prepare_data(cfg(tmp_path, data_dir=archive), 0, log=Log())


def test_archive_without_reviews(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "note.txt").write_text("hi")
    archive = fx.make_tar(str(tmp_path / "x"), str(tmp_path / "x.tar.gz"))
    with pytest.raises(UserError, match="no aclImdb"):
        prepare_data(cfg(tmp_path, data_dir=archive), 0, log=Log())


# ---------------------------------------------------------------------------------------------- offline ---
def test_offline_without_data_fails_fast(tmp_path):
    (tmp_path / "empty").mkdir()
    for dataset, data_dir, hint in [("imdb", "", "aclImdb_v1.tar.gz"),
                                    ("imdb", str(tmp_path / "empty"), "aclImdb_v1.tar.gz"),
                                    ("ag_news", "", "ag_news_csv.tar.gz")]:
        t = time.perf_counter()
        with pytest.raises(UserError, match=hint) as e:
            prepare_data(cfg(tmp_path, dataset=dataset, data_dir=data_dir), 0, log=Log())
        assert time.perf_counter() - t < 2
        assert "--data_dir" in str(e.value)


def test_is_online_is_bounded():
    t = time.perf_counter()
    assert sources.is_online("lth-tf-test.invalid", timeout=1.0) is False
    assert time.perf_counter() - t < 2.5


def test_data_dir_file_of_unknown_kind(tmp_path):
    path = fx.write(str(tmp_path / "notes.txt"), b"hello")
    with pytest.raises(UserError, match="not an IMDb file"):
        prepare_data(cfg(tmp_path, data_dir=path), 0, log=Log())


def test_tar_member_names_without_top_folder(tmp_path, imdb_dir):
    out = str(tmp_path / "flat.tar.gz")
    with tarfile.open(out, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(os.path.join(imdb_dir, split), arcname=split)
    d = prepare_data(cfg(tmp_path, data_dir=out), 0, log=Log())
    assert len(d.test) == 32
