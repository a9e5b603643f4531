"""Finding and reading the raw labelled texts: aclImdb folders and archives, the 50k-review IMDb CSV, AG News
CSV files (or their archive), prepared tensorflow-datasets directories, a tfds download, and the samples
shipped in the package.

`resolve_source` only looks at names (cheap). `Source.identity` hashes the content the texts and labels come
from (every labelled file's relative path and bytes for a folder, the file bytes for an archive, a CSV, a
sample or a tensorflow-datasets directory), so the data cache is keyed by content and checked before the
texts are parsed and tokenised; `Source.read` does the reading. Bad input raises `UserError` naming the file
and line; a class missing from a split or file is refused; empty texts are skipped and counted
(`RawData.skipped`), never dropped silently.
"""
from __future__ import annotations

import bz2
import csv
import glob
import gzip
import hashlib
import io
import lzma
import os
import re
import socket
import tarfile
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lth_tf.errors import UserError

IMDB_CLASSES = ["neg", "pos"]
AG_NEWS_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")

IMDB_HELP = ("download aclImdb_v1.tar.gz (https://ai.stanford.edu/~amaas/data/sentiment/) and pass its path or "
             "folder as --data_dir (the extracted aclImdb folder, any .tar/.tar.gz/.tar.xz/.tar.bz2 of it, or the "
             "50k-review CSV with a review,sentiment header also work)")
AG_NEWS_HELP = ("download ag_news_csv.tar.gz (train.csv, test.csv, classes.txt; e.g. "
                "https://github.com/mhjabreel/CharCnn_Keras/tree/master/data/ag_news_csv) and pass the archive or "
                "the folder holding train.csv and test.csv (optionally .gz) as --data_dir")
TFDS_NAMES = {"imdb": "imdb_reviews", "ag_news": "ag_news_subset"}
DOWNLOAD_HOSTS = {"imdb": "ai.stanford.edu", "ag_news": "drive.google.com"}

_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tbz")
_COMPRESSED_SUFFIXES = ("", ".gz", ".xz", ".bz2")
_REVIEW_RE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_CLASS_FILE_RE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]*\.txt$")  # any .txt in a class folder
ACL_FOLDERS = [f"{split}/{label}" for split in ("train", "test") for label in ("pos", "neg")]
ACL_LAYOUT = ("the layout must be train/pos, train/neg, test/pos and test/neg, each holding reviews named "
              "<id>_<rating>.txt (as in aclImdb_v1.tar.gz)")
BOM = "\ufeff"
_BACKSLASH_RE = re.compile(r"\\+")


@dataclass
class RawData:
    """Labelled texts in a canonical order, by part: 'train' and 'test' (a given split) or 'all'."""
    class_names: list[str]
    parts: dict[str, tuple[list[str], np.ndarray]]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_examples: list[str] = field(default_factory=list)  # "where: reason", the first few
    origins: dict[str, str] = field(default_factory=dict)  # part -> the file or folder it came from (messages)

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.skipped_examples) < 10:
            self.skipped_examples.append(f"{where}: {reason}")


class Source:
    """Where a dataset's texts come from. `identity` keys the cache: the source's kind and path and a SHA-256
    of the content its texts and labels come from (here: the file's bytes, streamed)."""
    kind = "?"

    def __init__(self, dataset: str, path: str):
        self.dataset, self.path = dataset, path

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def identity(self) -> dict:
        return {"kind": self.kind, "path": os.path.abspath(self.path), "sha256": file_sha256(self.path)}

    def read(self, log=print) -> RawData:  # pragma: no cover - abstract
        raise NotImplementedError


_HASH_BLOCK = 1 << 20  # files are hashed in blocks of this size (streamed, never read whole)
HASH_THREADS = 4  # file reads and hashlib release the GIL: threads overlap the per-file system calls


def _sha256_open(f) -> bytes:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(_HASH_BLOCK), b""):
        h.update(block)
    return h.digest()


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes (as stored, compressed or not), streamed."""
    try:
        with open(path, "rb") as f:
            return _sha256_open(f).hex()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None


def tree_sha256(files: list[tuple[str, str]]) -> str:
    """Hex SHA-256 over files, a list of (relative path, path) sorted by relative path: for each file its
    relative path (length-prefixed, UTF-8) and the SHA-256 of its bytes. A file renamed, moved to another
    folder (another label), added, removed or changed by one byte changes the result."""
    def digests(chunk):
        out = []
        for rel, path in chunk:
            try:
                with open(path, "rb") as f:
                    out.append(_sha256_open(f))
            except FileNotFoundError:
                raise UserError(f"{path}: vanished while the dataset was being hashed; run again once the "
                                f"data folder is no longer being changed") from None
            except OSError as e:
                raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
        return out

    size = 512
    chunks = [files[i:i + size] for i in range(0, len(files), size)]
    workers = max(1, min(HASH_THREADS, os.cpu_count() or 1, len(chunks)))
    if workers == 1:
        per_file = [d for chunk in chunks for d in digests(chunk)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            per_file = [d for part in pool.map(digests, chunks) for d in part]
    h = hashlib.sha256()
    for (rel, _), digest in zip(files, per_file):
        name = rel.encode("utf-8", "surrogateescape")
        h.update(len(name).to_bytes(4, "little") + name + digest)
    return h.hexdigest()


def _open_maybe_compressed(path: str):
    """Binary file object, decompressing .gz/.xz/.bz2 by name."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".xz"):
        return lzma.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


_CORRUPT = (EOFError, OSError, lzma.LZMAError, zlib.error, tarfile.TarError)


def _read_bytes(path: str) -> bytes:
    try:
        with _open_maybe_compressed(path) as f:
            return f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except _CORRUPT as e:
        raise UserError(f"{path}: cannot read it, truncated or corrupt ({e})") from None


def decode_utf8(data: bytes, where: str) -> str:
    """The text of a UTF-8 file; a byte-order mark at its start (as some editors write) is dropped."""
    try:
        text = data.decode("utf-8")
        return text[1:] if text.startswith(BOM) else text
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(f"{where}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {col}); "
                        f"convert the file to UTF-8") from None


def clean_ag_news(text: str) -> str:
    """AG News marks line breaks with backslashes ("second\\team", "\\\\" between paragraphs; its readme says
    "\\n", but every backslash-n in test.csv is a break before a word starting with n: "\\network") and
    escapes dollars as "\\$". Dollars are unescaped; every other run of backslashes becomes a space."""
    if "\\" not in text:
        return text
    return _BACKSLASH_RE.sub(" ", text.replace("\\$", "$"))


# ----------------------------------------------------------------------------------------------- IMDb ---
def _imdb_part_dict(examples: list[tuple], raw: RawData, where: str, parts_wanted=("train", "test")) -> None:
    """examples: (split, label_name, id, text, where); sorted into a canonical order that does not depend on
    the container (folder or archive). `where`: the folder or archive, for messages."""
    examples.sort(key=lambda e: (e[0] != "train", IMDB_CLASSES.index(e[1]), e[2]))
    for part in parts_wanted:
        texts, labels = [], []
        for split, label, _, text, where in examples:
            if split != part:
                continue
            if not text.strip():
                raw.skip(where, "empty text")
                continue
            texts.append(text)
            labels.append(IMDB_CLASSES.index(label))
        raw.parts[part] = (texts, np.asarray(labels, np.int32))
        raw.origins[part] = f"{where} ({part}/pos, {part}/neg)"


class AclImdbDir(Source):
    kind = "aclImdb folder"

    def _files(self) -> list[tuple[str, str]]:
        """(relative path, path) of every .txt in the four class folders, sorted by relative path. The
        relative path carries the split and the label. Refuses a layout without all four class folders,
        each with at least one review."""
        missing = [f for f in ACL_FOLDERS if not os.path.isdir(os.path.join(self.path, *f.split("/")))]
        if missing:
            names = ", ".join(os.path.join(self.path, *f.split("/")) for f in missing)
            raise UserError(f"{names}: no such folder{'s' if len(missing) > 1 else ''} in the aclImdb folder; "
                            f"{ACL_LAYOUT}")
        out = []
        for rel_folder in ACL_FOLDERS:
            folder = os.path.join(self.path, *rel_folder.split("/"))
            with os.scandir(folder) as it:
                names = [e.name for e in it if e.name.endswith(".txt") and e.is_file()]
            if not any(_REVIEW_RE.search(f"{rel_folder}/{n}") for n in names):
                raise UserError(f"{folder}: no reviews (<id>_<rating>.txt files) in this class folder; "
                                f"{ACL_LAYOUT}")
            out.extend((f"{rel_folder}/{n}", os.path.join(folder, n)) for n in names)
        out.sort()
        return out

    def identity(self) -> dict:
        files = self._files()
        return {"kind": self.kind, "path": os.path.abspath(self.path), "files": len(files),
                "sha256": tree_sha256(files)}

    def read(self, log=print) -> RawData:
        raw, examples = RawData(list(IMDB_CLASSES), {}), []
        for rel, path in self._files():
            m = _REVIEW_RE.search(rel)
            if not m:
                raw.skip(path, "file name not <id>_<rating>.txt")
                continue
            try:
                with open(path, "rb") as f:
                    text = decode_utf8(f.read(), path)
            except FileNotFoundError:
                raise UserError(f"{path}: vanished while the dataset was being read; run again once the data "
                                f"folder is no longer being changed") from None
            examples.append((m.group(1), m.group(2), int(m.group(3)), text, path))
        _imdb_part_dict(examples, raw, self.path)
        return raw


class AclImdbArchive(Source):
    kind = "aclImdb archive"

    def read(self, log=print) -> RawData:
        raw, examples = RawData(list(IMDB_CLASSES), {}), []
        found: dict[str, str] = {}  # "train/pos" -> the member prefix before it ("aclImdb/" or "")
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    m = _REVIEW_RE.search(member.name)
                    where = f"{self.path}:{member.name}"
                    if not m:
                        if _CLASS_FILE_RE.search(member.name):
                            raw.skip(where, "file name not <id>_<rating>.txt")
                        continue
                    text = decode_utf8(tar.extractfile(member).read(), where)
                    examples.append((m.group(1), m.group(2), int(m.group(3)), text, where))
                    found.setdefault(f"{m.group(1)}/{m.group(2)}", member.name[:m.start(1)])
        except FileNotFoundError:
            raise UserError(f"{self.path}: no such file") from None
        except _CORRUPT as e:
            raise UserError(f"{self.path}: truncated or corrupt archive ({type(e).__name__}: {e}); "
                            f"download it again") from None
        if not examples:
            raise UserError(f"{self.path}: no aclImdb/{{train,test}}/{{pos,neg}}/*.txt reviews inside; {IMDB_HELP}")
        missing = [f for f in ACL_FOLDERS if f not in found]
        if missing:
            prefix = next(iter(found.values()))
            names = ", ".join(f"{prefix}{f}/" for f in missing)
            raise UserError(f"{self.path}: no reviews in {names} inside the archive; {ACL_LAYOUT} (below an "
                            f"optional aclImdb/ folder)")
        _imdb_part_dict(examples, raw, self.path)
        return raw


IMDB_CSV_FORMAT = "the 50k-review IMDb CSV: a header review,sentiment, then one review per row"


class ImdbCsv(Source):
    kind = "IMDb CSV"

    def read(self, log=print) -> RawData:
        text = decode_utf8(_read_bytes(self.path), self.path)
        if not text.strip():
            raise UserError(f"{self.path}: the file is empty; expected {IMDB_CSV_FORMAT}")
        raw = RawData(list(IMDB_CLASSES), {}, origins={"all": self.path})
        texts, labels = [], []
        names = {"negative": 0, "positive": 1, "neg": 0, "pos": 1}
        rows = csv.reader(io.StringIO(text, newline=""))
        line = 0
        try:
            for row in rows:
                start, line = line + 1, rows.line_num
                if start == 1:
                    if [c.strip().lower() for c in row] != ["review", "sentiment"]:
                        raise UserError(f"{self.path}:1: expected the header review,sentiment, found "
                                        f"{','.join(row)!r:.80}")
                    continue
                if len(row) != 2:
                    raise UserError(f"{self.path}:{start}: expected 2 fields (review, sentiment), found {len(row)}")
                label = names.get(row[1].strip().lower())
                if label is None:
                    raise UserError(f"{self.path}:{start}: sentiment {row[1]!r:.40} is not positive or negative")
                if not row[0].strip():
                    raw.skip(f"{self.path}:{start}", "empty text")
                    continue
                texts.append(row[0])
                labels.append(label)
        except csv.Error as e:
            raise UserError(f"{self.path}:{rows.line_num}: malformed CSV ({e})") from None
        if not texts:
            if line <= 1:
                raise UserError(f"{self.path}: only the header, no reviews; expected {IMDB_CSV_FORMAT}")
            raise UserError(f"{self.path}: no reviews with text in the file")
        raw.parts["all"] = (texts, np.asarray(labels, np.int32))
        return raw


# -------------------------------------------------------------------------------------------- AG News ---
def read_ag_news_csv(data: bytes, where: str, num_classes: int, raw: RawData) -> tuple[list[str], np.ndarray]:
    """The original AG News CSV: no header (one naming a class column is tolerated), three quoted fields
    class (1-based), title, description. Text = title + " " + description, cleaned by `clean_ag_news`."""
    text = decode_utf8(data, where)
    if not text.strip():
        raise UserError(f"{where}: the file is empty; expected rows \"class\",\"title\",\"description\" "
                        f"with class 1..{num_classes}")
    texts, labels = [], []
    header = False
    rows = csv.reader(io.StringIO(text, newline=""))
    line = 0
    try:
        for row in rows:
            start, line = line + 1, rows.line_num
            if not row:
                raise UserError(f"{where}:{start}: empty line")
            if start == 1 and not row[0].strip().isdigit() and "class" in row[0].lower():
                header = True
                continue  # a header such as "Class Index,Title,Description"
            if len(row) != 3:
                raise UserError(f"{where}:{start}: expected 3 fields (class, title, description), found {len(row)}")
            value = row[0].strip()
            if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= num_classes:
                raise UserError(f"{where}:{start}: class {row[0]!r:.20} is not one of 1..{num_classes}")
            body = (clean_ag_news(row[1]) + " " + clean_ag_news(row[2])).strip()
            if not body:
                raw.skip(f"{where}:{start}", "empty text")
                continue
            texts.append(body)
            labels.append(int(value) - 1)
    except csv.Error as e:
        raise UserError(f"{where}:{rows.line_num}: malformed CSV ({e})") from None
    if not texts:
        if header and line <= 1:
            raise UserError(f"{where}: only a header, no rows")
        raise UserError(f"{where}: no rows with text in the file")
    return texts, np.asarray(labels, np.int32)


def _read_classes(data: bytes, where: str) -> list[str]:
    names = [n.strip() for n in decode_utf8(data, where).splitlines() if n.strip()]
    if len(names) < 2:
        raise UserError(f"{where}: expected one class name per line, at least two")
    return names


class AgNewsCsv(Source):
    kind = "AG News CSV"

    def __init__(self, dataset, path, train, test, classes=None):
        super().__init__(dataset, path)
        self.train, self.test, self.classes = train, test, classes

    def identity(self) -> dict:
        files = [(role, p) for role, p in (("train", self.train), ("test", self.test), ("classes", self.classes))
                 if p]
        h = hashlib.sha256()
        for role, p in files:
            h.update(f"{role}:{file_sha256(p)}\n".encode())
        return {"kind": self.kind, "files": {role: os.path.abspath(p) for role, p in files},
                "sha256": h.hexdigest()}

    def read(self, log=print) -> RawData:
        names = (_read_classes(_read_bytes(self.classes), self.classes) if self.classes
                 else list(AG_NEWS_CLASSES))
        raw = RawData(names, {})
        for part, path in (("train", self.train), ("test", self.test)):
            raw.parts[part] = read_ag_news_csv(_read_bytes(path), path, len(names), raw)
            raw.origins[part] = path
        return raw


class AgNewsArchive(Source):
    kind = "AG News archive"

    def read(self, log=print) -> RawData:
        found = {}
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for member in tar:
                    base = os.path.basename(member.name)
                    if member.isfile() and base in ("train.csv", "test.csv", "classes.txt"):
                        found[base] = (f"{self.path}:{member.name}", tar.extractfile(member).read())
        except FileNotFoundError:
            raise UserError(f"{self.path}: no such file") from None
        except _CORRUPT as e:
            raise UserError(f"{self.path}: truncated or corrupt archive ({type(e).__name__}: {e}); "
                            f"download it again") from None
        for needed in ("train.csv", "test.csv"):
            if needed not in found:
                raise UserError(f"{self.path}: no {needed} inside; {AG_NEWS_HELP}")
        names = _read_classes(found["classes.txt"][1], found["classes.txt"][0]) if "classes.txt" in found \
            else list(AG_NEWS_CLASSES)
        raw = RawData(names, {})
        for part in ("train", "test"):
            where, data = found[f"{part}.csv"]
            raw.parts[part] = read_ag_news_csv(data, where, len(names), raw)
            raw.origins[part] = where
        return raw


# -------------------------------------------------------------------------------------------- samples ---
class Sample(Source):
    """A CSV (label,text; label = class name) shipped in lth_tf/data/samples/, made by make_samples.py."""
    kind = "packaged sample"
    CLASSES = {"imdb_sample": IMDB_CLASSES, "ag_news_sample": AG_NEWS_CLASSES}

    def identity(self) -> dict:
        return {"kind": self.kind, "name": os.path.basename(self.path), "sha256": file_sha256(self.path)}

    def read(self, log=print) -> RawData:
        return read_sample_csv(self.path, self.CLASSES[self.dataset])


def read_sample_csv(path: str, class_names: list[str]) -> RawData:
    text = decode_utf8(_read_bytes(path), path)
    raw = RawData(list(class_names), {}, origins={"all": path})
    texts, labels = [], []
    rows = csv.reader(io.StringIO(text, newline=""))
    line = 0
    try:
        for row in rows:
            start, line = line + 1, rows.line_num
            if start == 1:
                if row != ["label", "text"]:
                    raise UserError(f"{path}:1: expected the header label,text")
                continue
            if len(row) != 2:
                raise UserError(f"{path}:{start}: expected 2 fields (label, text), found {len(row)}")
            if row[0] not in class_names:
                raise UserError(f"{path}:{start}: label {row[0]!r:.40} is not one of {', '.join(class_names)}")
            if not row[1].strip():
                raw.skip(f"{path}:{start}", "empty text")
                continue
            texts.append(row[1])
            labels.append(class_names.index(row[0]))
    except csv.Error as e:
        raise UserError(f"{path}:{rows.line_num}: malformed CSV ({e})") from None
    raw.parts["all"] = (texts, np.asarray(labels, np.int32))
    return raw


# ---------------------------------------------------------------------------- tensorflow-datasets ---
class TfdsPrepared(Source):
    """A prepared tensorflow-datasets directory (imdb_reviews or ag_news_subset), read with download=False."""
    kind = "tensorflow-datasets"

    def identity(self) -> dict:
        """Every file of the prepared version directory (dataset_info.json, features, record shards)."""
        files = []
        for folder, dirs, names in os.walk(self.path):
            dirs.sort()
            for name in names:
                path = os.path.join(folder, name)
                files.append((os.path.relpath(path, self.path).replace(os.sep, "/"), path))
        files.sort()
        return {"kind": self.kind, "path": os.path.abspath(self.path), "files": len(files),
                "sha256": tree_sha256(files)}

    def read(self, log=print) -> RawData:
        import tensorflow_datasets as tfds  # slow import: only here

        from lth_tf.keras import tf  # noqa: F401  (Keras 2 in force before tfds touches TensorFlow)
        try:
            builder = tfds.builder_from_directory(self.path)
            names = list(builder.info.features["label"].names)
            raw = RawData(names, {})
            for part in ("train", "test"):
                if part not in builder.info.splits:
                    raise UserError(f"{self.path}: the prepared dataset has no '{part}' split")
                texts, labels = [], []
                for i, ex in enumerate(tfds.as_numpy(builder.as_dataset(split=part, shuffle_files=False))):
                    if "text" in ex:
                        text = ex["text"].decode("utf-8")
                    else:
                        text = (clean_ag_news(ex["title"].decode("utf-8")) + " "
                                + clean_ag_news(ex["description"].decode("utf-8"))).strip()
                    if not text.strip():
                        raw.skip(f"{self.path}[{part}][{i}]", "empty text")
                        continue
                    texts.append(text)
                    labels.append(int(ex["label"]))
                raw.parts[part] = (texts, np.asarray(labels, np.int32))
                raw.origins[part] = f"{self.path} [{part}]"
        except UserError:
            raise
        except Exception as e:  # tfds raises many kinds; all mean the same to the user
            raise UserError(f"{self.path}: cannot read the prepared tensorflow-datasets data "
                            f"({type(e).__name__}: {e})") from None
        return raw


class TfdsDownload(Source):
    """Download and prepare with tensorflow-datasets (online only; see `resolve_source`)."""
    kind = "tensorflow-datasets download"

    def identity(self) -> dict:
        return {"kind": self.kind, "name": TFDS_NAMES[self.dataset], "data_dir": os.path.abspath(self.path)}

    def read(self, log=print) -> RawData:
        import tensorflow_datasets as tfds

        from lth_tf.keras import tf  # noqa: F401
        name = TFDS_NAMES[self.dataset]
        log(f"downloading {name} with tensorflow-datasets into {self.path} ...")
        try:
            builder = tfds.builder(name, data_dir=self.path)
            builder.download_and_prepare()
        except Exception as e:
            help_ = IMDB_HELP if self.dataset == "imdb" else AG_NEWS_HELP
            raise UserError(f"tensorflow-datasets could not download {name} ({type(e).__name__}: {e}); "
                            f"{help_}") from None
        return TfdsPrepared(self.dataset, builder.data_dir).read(log)


def find_tfds_dir(root: str, dataset: str) -> str | None:
    """The newest prepared version directory of the dataset's tfds builder under root, or None."""
    name = TFDS_NAMES[dataset]
    hits = glob.glob(os.path.join(glob.escape(root), name, "*", "dataset_info.json")) + \
        glob.glob(os.path.join(glob.escape(root), name, "*", "*", "dataset_info.json"))
    if not hits:
        return None

    def version(p):
        v = os.path.basename(os.path.dirname(p))
        return tuple(int(x) if x.isdigit() else -1 for x in v.split("."))
    return os.path.dirname(max(hits, key=version))


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
        with _open_maybe_compressed(path) as f:
            head = f.readline(200)
    except _CORRUPT:
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


def _ag_news_in_folder(folder: str) -> Source | None:
    train, test = _compressed(folder, "train.csv"), _compressed(folder, "test.csv")
    if train and test:
        return AgNewsCsv("ag_news", folder, train, test, _compressed(folder, "classes.txt"))
    if test and not train:
        raise UserError(f"{test} found but train.csv is missing in {folder}: AG News needs its training split "
                        f"(120,000 rows) too; {AG_NEWS_HELP}")
    if train and not test:
        raise UserError(f"{train} found but test.csv is missing in {folder}; {AG_NEWS_HELP}")
    sub = os.path.join(folder, "ag_news_csv")
    if os.path.isdir(sub):
        return _ag_news_in_folder(sub)
    entries = sorted(os.listdir(folder))
    archives = [e for e in entries if _is_archive(e) and os.path.isfile(os.path.join(folder, e))]
    archives.sort(key=lambda e: (not e.lower().startswith("ag_news"), e))
    if archives:
        return AgNewsArchive("ag_news", os.path.join(folder, archives[0]))
    manual = os.path.join(folder, "downloads", "manual")
    if os.path.isdir(manual):
        return _ag_news_in_folder(manual)
    return None


def resolve_source(dataset: str, data_dir: str, online=None) -> Source:
    """Pick the source, in order: files in data_dir; a prepared tfds directory in data_dir (or, without
    data_dir, in ~/tensorflow_datasets); a tfds download when the host answers within ~3 s. Offline with
    nothing local fails at once with a UserError saying what to download."""
    online = online or is_online
    if dataset in Sample.CLASSES:
        path = os.path.join(SAMPLES_DIR, f"{dataset}.csv.gz")
        if not os.path.isfile(path):
            raise UserError(f"{path}: the packaged sample is missing; reinstall lth_tf or regenerate it with "
                            f"python -m lth_tf.data.make_samples")
        return Sample(dataset, path)
    if dataset not in TFDS_NAMES:
        choices = ", ".join(list(TFDS_NAMES) + list(Sample.CLASSES))
        raise UserError(f"--dataset={dataset}: unknown dataset; choose from {choices}")
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
                return AgNewsArchive(dataset, path)
            if dataset == "ag_news" and os.path.basename(path).startswith(("train.csv", "test.csv")):
                return _ag_news_in_folder(os.path.dirname(path) or ".") or \
                    _fail(f"--data_dir={data_dir}: {help_}")
            raise UserError(f"--data_dir={data_dir}: not an {label} file this reader knows; {help_}")
        find = _imdb_in_folder if dataset == "imdb" else _ag_news_in_folder
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
