"""What every dataset reader shares: `RawData` (the labelled texts a reader returns), `Source` (the interface:
`describe`, `identity`, `read`), the content hashes that make a source's identity, and the reading helpers
(decompressing by name, UTF-8 with an optional byte-order mark, CSV records with the line they start on).

They live here, not in each reader, so that every reader reports a bad file with the same words and every
source's identity is hashed the same way (the data cache is keyed by it; see lth_tf/data/sources.py).
"""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lth_tf.errors import UserError

BOM = "\ufeff"


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


# --------------------------------------------------------------------------------------------- hashing ---
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


# --------------------------------------------------------------------------------------------- reading ---
def open_maybe_compressed(path: str):
    """Binary file object, decompressing .gz/.xz/.bz2 by name."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".xz"):
        return lzma.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


CORRUPT = (EOFError, OSError, lzma.LZMAError, zlib.error, tarfile.TarError)  # a truncated or damaged file


def read_bytes(path: str) -> bytes:
    """The bytes of a file, decompressed by name; a missing or damaged file is a UserError naming it."""
    try:
        with open_maybe_compressed(path) as f:
            return f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except CORRUPT as e:
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


class CsvRows:
    """The records of a CSV text as (line the record starts on, fields). A quoted field may span lines, so
    messages name the record's first line; `line` is the last line read so far (1 after a lone header).
    A malformed file raises UserError `where:line: malformed CSV (...)`."""

    def __init__(self, text: str, where: str):
        self.text, self.where, self.line = text, where, 0

    def __iter__(self):
        rows = csv.reader(io.StringIO(self.text, newline=""))
        try:
            for row in rows:
                start, self.line = self.line + 1, rows.line_num
                yield start, row
        except csv.Error as e:
            raise UserError(f"{self.where}:{rows.line_num}: malformed CSV ({e})") from None
