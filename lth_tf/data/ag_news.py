"""AG News readers: the original CSV files (train.csv, test.csv, optionally classes.txt; each maybe compressed)
in a folder or in their archive (ag_news_csv.tar.gz), and the cleaning of AG News' backslash escapes.
"""
from __future__ import annotations

import hashlib
import os
import re
import tarfile

import numpy as np

from lth_tf.data.raw import CORRUPT, CsvRows, RawData, Source, decode_utf8, file_sha256, read_bytes
from lth_tf.errors import UserError

AG_NEWS_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
AG_NEWS_HELP = ("download ag_news_csv.tar.gz (train.csv, test.csv, classes.txt; e.g. "
                "https://github.com/mhjabreel/CharCnn_Keras/tree/master/data/ag_news_csv) and pass the archive or "
                "the folder holding train.csv and test.csv (optionally .gz) as --data_dir")
_BACKSLASH_RE = re.compile(r"\\+")


def clean_ag_news(text: str) -> str:
    """AG News marks line breaks with backslashes ("second\\team", "\\\\" between paragraphs; its readme says
    "\\n", but every backslash-n in test.csv is a break before a word starting with n: "\\network") and
    escapes dollars as "\\$". Dollars are unescaped; every other run of backslashes becomes a space."""
    if "\\" not in text:
        return text
    return _BACKSLASH_RE.sub(" ", text.replace("\\$", "$"))


def read_ag_news_csv(data: bytes, where: str, num_classes: int, raw: RawData) -> tuple[list[str], np.ndarray]:
    """The original AG News CSV: no header (one naming a class column is tolerated), three quoted fields
    class (1-based), title, description. Text = title + " " + description, cleaned by `clean_ag_news`."""
    text = decode_utf8(data, where)
    if not text.strip():
        raise UserError(f"{where}: the file is empty; expected rows \"class\",\"title\",\"description\" "
                        f"with class 1..{num_classes}")
    texts, labels = [], []
    header = False
    rows = CsvRows(text, where)
    for start, row in rows:
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
    if not texts:
        if header and rows.line <= 1:
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
        """The train part is absent when train.csv is (allowed only with --split=pooled: sources.py)."""
        names = (_read_classes(read_bytes(self.classes), self.classes) if self.classes
                 else list(AG_NEWS_CLASSES))
        raw = RawData(names, {})
        for part, path in (("train", self.train), ("test", self.test)):
            if not path:
                continue
            raw.parts[part] = read_ag_news_csv(read_bytes(path), path, len(names), raw)
            raw.origins[part] = path
        return raw


class AgNewsArchive(Source):
    """pooled (--split=pooled): an archive with test.csv but no train.csv will do."""
    kind = "AG News archive"

    def __init__(self, dataset, path, pooled: bool = False):
        super().__init__(dataset, path)
        self.pooled = pooled

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
        except CORRUPT as e:
            raise UserError(f"{self.path}: truncated or corrupt archive ({type(e).__name__}: {e}); "
                            f"download it again") from None
        for needed in ("test.csv",) if self.pooled else ("train.csv", "test.csv"):
            if needed not in found:
                raise UserError(f"{self.path}: no {needed} inside; {AG_NEWS_HELP}"
                                + ("; or pass --split=pooled to pool the rows there are and split them 80/20"
                                   if needed == "train.csv" else ""))
        names = _read_classes(found["classes.txt"][1], found["classes.txt"][0]) if "classes.txt" in found \
            else list(AG_NEWS_CLASSES)
        raw = RawData(names, {})
        for part in ("train", "test"):
            if f"{part}.csv" not in found:
                continue
            where, data = found[f"{part}.csv"]
            raw.parts[part] = read_ag_news_csv(data, where, len(names), raw)
            raw.origins[part] = where
        return raw
