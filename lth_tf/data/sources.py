"""Finding the raw labelled texts: `resolve_source` picks, by names only (cheap), which reader serves a dataset:
aclImdb folders and archives and the 50k-review IMDb CSV (lth_tf/data/imdb.py), AG News CSV files or their
archive (ag_news.py), the samples shipped in the package (sample.py), a prepared tensorflow-datasets
directory or a tfds download (tfds.py). What every reader shares is in raw.py. This module also re-exports
those readers' names, so `from lth_tf.data import sources; sources.AclImdbDir(...)` keeps working; to patch
a constant in a test, patch the module that owns it (`raw.HASH_THREADS`; `is_online` is owned here).

`Source.identity` hashes the content the texts and labels come from (every labelled file's relative path and
bytes for a folder, the file bytes for an archive, a CSV, a sample or a tensorflow-datasets directory), so
the data cache is keyed by content and checked before the texts are parsed and tokenised; `Source.read` does
the reading. Bad input raises `UserError` naming the file and line; a class missing from a split or file is
refused; empty texts are skipped and counted (`RawData.skipped`), never dropped silently.
"""
from __future__ import annotations

import os
import socket
import threading

from lth_tf.data.ag_news import (AG_NEWS_CLASSES, AG_NEWS_HELP, AgNewsArchive, AgNewsCsv, clean_ag_news,
                                 read_ag_news_csv)
from lth_tf.data.imdb import (ACL_FOLDERS, ACL_LAYOUT, IMDB_CLASSES, IMDB_CSV_FORMAT, IMDB_HELP, AclImdbArchive,
                              AclImdbDir, ImdbCsv)
from lth_tf.data.raw import (BOM, CORRUPT, HASH_THREADS, RawData, Source, decode_utf8, file_sha256,
                             open_maybe_compressed, read_bytes, tree_sha256)
from lth_tf.data.sample import SAMPLES_DIR, Sample, read_sample_csv
from lth_tf.data.tfds import TFDS_NAMES, TfdsDownload, TfdsPrepared, find_tfds_dir
from lth_tf.errors import UserError


__all__ = ["RawData", "Source", "BOM", "HASH_THREADS", "file_sha256", "tree_sha256", "read_bytes", "decode_utf8",
           "IMDB_CLASSES", "IMDB_HELP", "IMDB_CSV_FORMAT", "ACL_FOLDERS", "ACL_LAYOUT", "AclImdbDir",
           "AclImdbArchive", "ImdbCsv", "AG_NEWS_CLASSES", "AG_NEWS_HELP", "clean_ag_news", "read_ag_news_csv",
           "AgNewsCsv", "AgNewsArchive", "SAMPLES_DIR", "Sample", "read_sample_csv", "TFDS_NAMES", "TfdsPrepared",
           "TfdsDownload", "find_tfds_dir", "DOWNLOAD_HOSTS", "is_online", "check_dataset", "resolve_source"]

DOWNLOAD_HOSTS = {"imdb": "ai.stanford.edu", "ag_news": "drive.google.com"}
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz")
_COMPRESSED_SUFFIXES = ("", ".gz", ".xz", ".bz2")


# ------------------------------------------------------------------------------------------ resolving ---
def is_online(host: str, timeout: float = 3.0) -> bool:
    """Can a TCP connection to host:443 be opened within `timeout` seconds (DNS included)?"""
    result = []

    def probe():
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result)


def _compressed(folder: str, name: str) -> str | None:
    for suffix in _COMPRESSED_SUFFIXES:
        p = os.path.join(folder, name + suffix)
        if os.path.isfile(p):
            return p
    return None


def _is_archive(path: str) -> bool:
    return path.lower().endswith(_ARCHIVE_SUFFIXES)


def _is_csv_name(path: str) -> bool:
    low = path.lower()
    return any(low.endswith(".csv" + s) for s in _COMPRESSED_SUFFIXES)


def _csv_head(path: str) -> str | None:
    """The first line of a (maybe compressed) CSV, without a byte-order mark; None if unreadable."""
    try:
        with open_maybe_compressed(path) as f:
            head = f.readline(200)
    except CORRUPT:
        return None
    if head.startswith(BOM.encode()):
        head = head[len(BOM.encode()):]
    return head.decode("utf-8", "replace")


def _is_imdb_csv(path: str) -> bool:
    if not _is_csv_name(path):
        return False
    head = _csv_head(path)
    return head is not None and head.strip().lower().replace(" ", "") in ("review,sentiment",
                                                                             '"review","sentiment"')


def _imdb_in_folder(folder: str) -> Source | None:
    if any(os.path.isdir(os.path.join(folder, s, c)) for s in ("train", "test") for c in IMDB_CLASSES):
        return AclImdbDir("imdb", folder)
    if os.path.isdir(os.path.join(folder, "aclImdb")):
        return _imdb_in_folder(os.path.join(folder, "aclImdb"))
    entries = sorted(os.listdir(folder))
    archives = [e for e in entries if _is_archive(e) and os.path.isfile(os.path.join(folder, e))]
    archives.sort(key=lambda e: (not e.lower().startswith("aclimdb"), e))
    if archives:
        return AclImdbArchive("imdb", os.path.join(folder, archives[0]))
    for e in entries:
        p = os.path.join(folder, e)
        if os.path.isfile(p) and _is_imdb_csv(p):
            return ImdbCsv("imdb", p)
    manual = os.path.join(folder, "downloads", "manual")
    if os.path.isdir(manual):
        return _imdb_in_folder(manual)
    return None


def _ag_news_in_folder(folder: str, pooled: bool = False) -> Source | None:
    """pooled (--split=pooled): test.csv alone will do, its rows are pooled and split 80/20."""
    train, test = _compressed(folder, "train.csv"), _compressed(folder, "test.csv")
    if (train or pooled) and test:
        return AgNewsCsv("ag_news", folder, train, test, _compressed(folder, "classes.txt"))
    if test and not train:
        raise UserError(f"{test} found but train.csv is missing in {folder}: AG News needs its training split "
                        f"(120,000 rows) too; {AG_NEWS_HELP}; or pass --split=pooled to pool the rows there are "
                        f"and split them 80/20 (not the study's AG News protocol)")
    if train and not test:
        raise UserError(f"{train} found but test.csv is missing in {folder}; {AG_NEWS_HELP}")
    sub = os.path.join(folder, "ag_news_csv")
    if os.path.isdir(sub):
        return _ag_news_in_folder(sub, pooled)
    entries = sorted(os.listdir(folder))
    archives = [e for e in entries if _is_archive(e) and os.path.isfile(os.path.join(folder, e))]
    archives.sort(key=lambda e: (not e.lower().startswith("ag_news"), e))
    if archives:
        return AgNewsArchive("ag_news", os.path.join(folder, archives[0]), pooled=pooled)
    manual = os.path.join(folder, "downloads", "manual")
    if os.path.isdir(manual):
        return _ag_news_in_folder(manual, pooled)
    return None


def check_dataset(dataset: str) -> None:
    """Refuse a --dataset name no reader knows, listing the ones it knows."""
    if dataset not in TFDS_NAMES and dataset not in Sample.CLASSES:
        choices = ", ".join(list(TFDS_NAMES) + list(Sample.CLASSES))
        raise UserError(f"--dataset={dataset}: unknown dataset; choose from {choices}")


def resolve_source(dataset: str, data_dir: str, online=None, split: str = "study") -> Source:
    """Pick the source, in order: files in data_dir; a prepared tfds directory in data_dir (or, without
    data_dir, in ~/tensorflow_datasets); a tfds download when the host answers within ~3 s. Offline with
    nothing local fails at once with a UserError saying what to download. split='pooled' (AG News): a
    test.csv without train.csv is accepted (its rows are pooled and split 80/20)."""
    online = online or is_online
    pooled = dataset == "ag_news" and split == "pooled"
    if dataset in Sample.CLASSES:
        path = os.path.join(SAMPLES_DIR, f"{dataset}.csv.gz")
        if not os.path.isfile(path):
            raise UserError(f"{path}: the packaged sample is missing; reinstall lth_tf or regenerate it with "
                            f"python -m lth_tf.data.make_samples")
        return Sample(dataset, path)
    check_dataset(dataset)
    help_ = IMDB_HELP if dataset == "imdb" else AG_NEWS_HELP
    label = "IMDb" if dataset == "imdb" else "AG News"
    if data_dir:
        path = os.path.expanduser(data_dir)
        if not os.path.exists(path):
            raise UserError(f"--data_dir={data_dir}: no such file or folder; {help_}")
        if os.path.isfile(path):
            if dataset == "imdb" and _is_archive(path):
                return AclImdbArchive(dataset, path)
            if dataset == "imdb" and _is_imdb_csv(path):
                return ImdbCsv(dataset, path)
            if dataset == "imdb" and _is_csv_name(path):
                head = _csv_head(path)
                if head == "":
                    raise UserError(f"{path}: the file is empty; expected {IMDB_CSV_FORMAT}")
                if head is not None:
                    raise UserError(f"{path}:1: expected the header review,sentiment, found "
                                    f"{head.strip()!r:.80}; expected {IMDB_CSV_FORMAT}")
            if dataset == "ag_news" and _is_archive(path):
                return AgNewsArchive(dataset, path, pooled=pooled)
            if dataset == "ag_news" and os.path.basename(path).startswith(("train.csv", "test.csv")):
                return _ag_news_in_folder(os.path.dirname(path) or ".", pooled) or \
                    _fail(f"--data_dir={data_dir}: {help_}")
            raise UserError(f"--data_dir={data_dir}: not an {label} file this reader knows; {help_}")
        find = _imdb_in_folder if dataset == "imdb" else lambda folder: _ag_news_in_folder(folder, pooled)
        found = find(path)
        for sub in ("imdb", "aclImdb") if dataset == "imdb" else ("ag_news", "ag_news_csv"):
            if not found and os.path.isdir(os.path.join(path, sub)):  # e.g. --data_dir=shared/data
                found = find(os.path.join(path, sub))
        if found:
            return found
        tfds_dir = find_tfds_dir(path, dataset)
        if tfds_dir:
            return TfdsPrepared(dataset, tfds_dir)
        tfds_root = path
    else:
        tfds_root = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
        tfds_dir = find_tfds_dir(tfds_root, dataset) if os.path.isdir(tfds_root) else None
        if tfds_dir:
            return TfdsPrepared(dataset, tfds_dir)
    where = f"--data_dir={data_dir}" if data_dir else "no --data_dir given"
    if online(DOWNLOAD_HOSTS[dataset]):
        return TfdsDownload(dataset, tfds_root)
    raise UserError(f"no {label} data found ({where}) and no network to download it: {help_}")


def _fail(message: str):
    raise UserError(message)
