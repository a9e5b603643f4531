"""Checks on the real data in <repo>/../shared/data (skipped where it is absent)."""
import filecmp
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import data_fixtures as fx  # noqa: E402

from lth_tf.config import DataConfig  # noqa: E402
from lth_tf.data import make_samples, prepare_data, sources, splits, tokenize, tokenize_tf  # noqa: E402
from lth_tf.errors import UserError  # noqa: E402

DATA = os.path.join(fx.SHARED, "data")
AG_TEST = os.path.join(DATA, "ag_news", "test.csv.gz")
IMDB = os.path.join(DATA, "imdb", "aclImdb_labelled.tar.xz")
pytestmark = pytest.mark.skipif(not os.path.isdir(DATA), reason=f"{DATA} is absent")


def quiet(*args):
    pass


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(sources, "is_online", lambda host, timeout=3.0: False)


def read_ag_test():
    raw = sources.RawData(list(sources.AG_NEWS_CLASSES), {})
    texts, labels = sources.read_ag_news_csv(sources.read_bytes(AG_TEST), AG_TEST, 4, raw)
    return texts, labels, raw


def test_ag_news_test_split():
    texts, labels, raw = read_ag_test()
    assert len(texts) == 7600 and np.bincount(labels).tolist() == [1900] * 4
    assert raw.skipped == {}
    assert not any("\\" in t for t in texts)
    assert texts[0] == ("Fears for T N pension after talks Unions representing workers at Turner   Newall say they "
                        "are 'disappointed' after talks with stricken parent firm Federal Mogul.")
    with open(os.path.join(DATA, "ag_news", "classes.txt")) as f:
        assert f.read().split("\n")[:4] == sources.AG_NEWS_CLASSES


def test_ag_news_folder_without_train_csv(tmp_path):
    t = time.perf_counter()
    with pytest.raises(UserError, match=r"test\.csv\.gz found but train\.csv is missing"):
        prepare_data(DataConfig(dataset="ag_news", data_dir=os.path.join(DATA, "ag_news"),
                                cache_dir=str(tmp_path)), 0, log=quiet)
    assert time.perf_counter() - t < 2


def test_tokenisers_agree_on_ag_news_test():
    from lth_tf.keras import tf
    texts = read_ag_test()[0]
    got = tokenize_tf(tf.constant(texts)).to_list()
    assert all(tokenize(t) == [x.decode() for x in row] for t, row in zip(texts, got))


def test_samples_regenerate_byte_identical(tmp_path):
    make_samples.main([f"--imdb={IMDB}", f"--ag_news={AG_TEST}", f"--out_dir={tmp_path}"])
    for name in ("imdb_sample.csv.gz", "ag_news_sample.csv.gz"):
        assert filecmp.cmp(str(tmp_path / name), os.path.join(sources.SAMPLES_DIR, name), shallow=False), name


def test_imdb_archive_and_study_split():
    """The real archive: 25,000/25,000 balanced, no empty review; the study split (as prepare_data makes it,
    here without the ~30 s tokenisation) is 28,000/12,000/10,000 and balanced. The full pipeline on this data
    is measured by python -m benchmarks.data_timing (docs/data.md)."""
    source = sources.resolve_source("imdb", os.path.join(DATA, "imdb"))
    assert isinstance(source, sources.AclImdbArchive)
    raw = source.read(quiet)
    assert raw.skipped == {}
    for part in ("train", "test"):
        assert np.bincount(raw.parts[part][1]).tolist() == [12_500, 12_500]
    labels = np.concatenate([raw.parts["train"][1], raw.parts["test"][1]])
    train_all, test = splits.stratified_split(labels, splits.TEST_FRACTION, np.random.default_rng([0, 1]), 2)
    train, valid = splits.stratified_split(labels[train_all], 0.3, np.random.default_rng([0, 2]), 2)
    assert (len(train), len(valid), len(test)) == (28_000, 12_000, 10_000)
    assert np.bincount(labels[test]).tolist() == [5_000, 5_000]
    assert np.bincount(labels[train_all][valid]).tolist() == [6_000, 6_000]
    assert np.bincount(labels[train_all][train]).tolist() == [14_000, 14_000]


def test_imdb_archive_identity_is_its_sha256():
    """The cache key's content identity of the real archive is the SHA-256 of its bytes, the value
    shared/data/README.md gives for it; hashing it is cheap (~0.02 s measured, see docs/data.md)."""
    source = sources.resolve_source("imdb", IMDB)
    t = time.perf_counter()
    identity = source.identity()
    assert time.perf_counter() - t < 5
    assert identity["sha256"] == "bbd4ba93e160a8e9b28311921e36c9bf42772d13bdca26b88bba235460562c8a"
