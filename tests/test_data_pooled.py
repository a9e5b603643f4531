"""--split=pooled for AG News: every labelled row pooled and split as the study split IMDb (80/20 stratified,
seeded, then --valid_fraction), labelled in the stats as not the study's protocol, keyed in the cache."""
import os
import sys
import tarfile

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import data_fixtures as fx  # noqa: E402

from lth_tf.config import DataConfig  # noqa: E402
from lth_tf.data import cache as data_cache  # noqa: E402
from lth_tf.data import prepare_data, sources  # noqa: E402
from lth_tf.data.sample import SAMPLES_DIR, read_sample_csv  # noqa: E402
from lth_tf.errors import UserError  # noqa: E402
from lth_tf.rundir import RunDir  # noqa: E402

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


def quiet(*args):
    pass


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "is_online", lambda host, timeout=3.0: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def cfg(tmp_path, **kw):
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    kw.setdefault("dataset", "ag_news")
    return DataConfig(**kw)


def uid(prefix, c, i):
    """A one-token id of letters only: prefix, the class (a-d), the index (two letters)."""
    return f"{prefix}{'abcd'[c - 1]}{chr(97 + i // 26)}{chr(97 + i % 26)}"


def rows(prefix, per_class):
    """AG News rows whose title starts with a unique id (prefix, class, index)."""
    words = {1: "war president", 2: "game team", 3: "stocks oil", 4: "software space"}
    return [[str(c), f"{uid(prefix, c, i)} {words[c]}", f"Reuters - {words[c]} the of it {i}"]
            for c in (1, 2, 3, 4) for i in range(per_class)]


def make_folder(folder, train_per_class=24, test_per_class=2):
    if train_per_class:
        fx.make_ag_csv(os.path.join(folder, "train.csv"), rows("tr", train_per_class))
    fx.make_ag_csv(os.path.join(folder, "test.csv"), rows("te", test_per_class))
    return folder


def uids(data, split):
    cache = data.stats["cache"]
    corpus = data_cache.load_corpus(cache["path"][:-len(".npz")], cache["key"])
    s = corpus.split(("train", "valid", "test").index(split))
    return [corpus.tokens[s.token_ids[a]] for a in s.offsets[:-1]]


def test_pooled_pools_both_files_and_splits_like_the_study_split(tmp_path):
    folder = make_folder(str(tmp_path / "ag"))  # 96 train.csv + 8 test.csv rows, 26 per class
    d = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled"), 0, log=quiet)
    # 104 pooled: 20% test = 21 (stratified: 5.2 per class, the remainder to the lowest class), then 30% of 83
    assert (len(d.train), len(d.valid), len(d.test)) == (58, 25, 21)
    assert np.bincount(d.test.labels).tolist() == [6, 5, 5, 5]
    assert np.bincount(d.valid.labels).tolist() == [6, 7, 6, 6]
    ids = {s: uids(d, s) for s in ("train", "valid", "test")}
    everything = {uid(p, c, i) for p, n in (("tr", 24), ("te", 2)) for c in (1, 2, 3, 4) for i in range(n)}
    assert sum(len(v) for v in ids.values()) == len(set().union(*ids.values())) == 104
    assert set().union(*ids.values()) == everything  # disjoint and complete
    for split in ids:  # labels follow the rows
        assert ["abcd".index(u[2]) for u in ids[split]] == getattr(d, split).labels.tolist()
    # labelled as not the study's protocol, in the stats (which data.json holds)
    s = d.stats
    assert s["split"] == "pooled" and "NOT the study's AG News protocol" in s["split_note"]
    assert "96 train.csv + 8 test.csv rows split 80/20" in s["split_note"] and "--split_seed=0" in s["split_note"]
    run = RunDir(str(tmp_path / "run"))
    run.write_data(d, "f" * 16)
    assert run.data_info()["stats"]["split_note"] == s["split_note"]
    # the study split of the same folder: the given files, no note
    study = prepare_data(cfg(tmp_path, data_dir=folder), 0, log=quiet)
    assert (len(study.train), len(study.valid), len(study.test)) == (67, 29, 8)
    assert study.stats["split"] == "given" and "split_note" not in study.stats


def test_pooled_is_seeded_cached_and_keyed(tmp_path):
    folder = make_folder(str(tmp_path / "ag"))
    a = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled"), 0, log=quiet)
    b = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled", cache_dir=str(tmp_path / "other")), 0, log=quiet)
    assert not b.stats["cache"]["hit"]
    assert all(uids(a, s) == uids(b, s) for s in ("train", "valid", "test"))  # recomputed: the same split
    hit = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled"), 0, log=quiet)
    assert hit.stats["cache"]["hit"] and hit.stats["split_note"] == a.stats["split_note"]
    c = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled", split_seed=1), 0, log=quiet)
    assert sorted(uids(c, "test")) != sorted(uids(a, "test"))
    identity = sources.resolve_source("ag_news", folder, split="pooled").identity()
    study_key, study_parts = data_cache.cache_key(cfg(tmp_path, data_dir=folder), identity)
    pooled_key, pooled_parts = data_cache.cache_key(cfg(tmp_path, data_dir=folder, split="pooled"), identity)
    assert pooled_key != study_key and pooled_parts["split"] == "pooled"
    assert "split" not in study_parts  # AG News' study split keeps the key (and the caches) it always had


def test_test_csv_alone(tmp_path):
    folder = make_folder(str(tmp_path / "ag"), train_per_class=0, test_per_class=10)
    with pytest.raises(UserError, match=r"train\.csv is missing.*--split=pooled"):
        prepare_data(cfg(tmp_path, data_dir=folder), 0, log=quiet)
    d = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled"), 0, log=quiet)
    assert (len(d.train), len(d.valid), len(d.test)) == (22, 10, 8)
    assert "40 test.csv rows" in d.stats["split_note"]
    # the same through the archive
    archive = str(tmp_path / "ag_news_csv.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(os.path.join(folder, "test.csv"), arcname="ag_news_csv/test.csv")
    with pytest.raises(UserError, match=r"no train\.csv inside.*--split=pooled"):
        prepare_data(cfg(tmp_path, data_dir=archive), 0, log=quiet)
    e = prepare_data(cfg(tmp_path, data_dir=archive, split="pooled"), 0, log=quiet)
    assert e.vocab == d.vocab and np.array_equal(e.test.labels, d.test.labels)


def test_pooling_the_sample_rows_reproduces_the_packaged_sample_split(tmp_path):
    """ag_news_sample (one file, split 80/20 then 30%) and the same rows given as an AG News test.csv with
    --split=pooled go through the same split: identical data."""
    raw = read_sample_csv(os.path.join(SAMPLES_DIR, "ag_news_sample.csv.gz"), CLASSES)
    texts, labels = raw.parts["all"]
    assert all("\\" not in t for t in texts)  # AG News' cleaning leaves the sample's texts as they are
    folder = str(tmp_path / "ag")
    fx.make_ag_csv(os.path.join(folder, "test.csv"), [[str(lab + 1), t, ""] for t, lab in zip(texts, labels)])
    pooled = prepare_data(cfg(tmp_path, data_dir=folder, split="pooled"), 25000, log=quiet)
    sample = prepare_data(cfg(tmp_path, dataset="ag_news_sample"), 25000, log=quiet)
    assert (len(pooled.train), len(pooled.valid), len(pooled.test)) == (1120, 480, 400)
    assert pooled.vocab == sample.vocab
    for split in ("train", "valid", "test"):
        for field in ("token_ids", "offsets", "labels"):
            assert np.array_equal(getattr(getattr(pooled, split), field), getattr(getattr(sample, split), field))
    assert pooled.stats["split"] == "pooled" and "2,000 test.csv rows" in pooled.stats["split_note"]
    # --split does not apply to the samples: ignored, the same data and cache
    again = prepare_data(cfg(tmp_path, dataset="ag_news_sample", split="pooled"), 25000, log=quiet)
    assert again.stats["cache"]["hit"] and again.stats["split"] == "80/20" and "split_note" not in again.stats


def test_pooled_refused_for_imdb_and_official_for_ag_news(tmp_path):
    with pytest.raises(UserError, match="--split=pooled.*--split=study"):
        prepare_data(cfg(tmp_path, dataset="imdb", data_dir=str(tmp_path), split="pooled"), 0, log=quiet)
    with pytest.raises(UserError, match="--split=official"):
        prepare_data(cfg(tmp_path, data_dir=str(tmp_path), split="official"), 0, log=quiet)
