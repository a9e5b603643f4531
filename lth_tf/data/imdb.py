"""IMDb readers: the aclImdb folder, any tar archive of it, and the widely used 50k-review CSV.

The folder and the archive give the same texts in the same canonical order (train before test, neg before
pos, by review id), so they give identical splits; the CSV has its own order and no official split.
"""
from __future__ import annotations

import os
import re
import tarfile

import numpy as np

from lth_tf.data.raw import CORRUPT, CsvRows, RawData, Source, decode_utf8, read_bytes, tree_sha256
from lth_tf.errors import UserError

IMDB_CLASSES = ["neg", "pos"]
IMDB_HELP = ("download aclImdb_v1.tar.gz (https://ai.stanford.edu/~amaas/data/sentiment/) and pass its path or "
             "folder as --data_dir (the extracted aclImdb folder, any .tar/.tar.gz/.tar.xz/.tar.bz2 of it, or the "
             "50k-review CSV with a review,sentiment header also work)")
_REVIEW_RE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_CLASS_FILE_RE = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]*\.txt$")  # any .txt in a class folder
ACL_FOLDERS = [f"{split}/{label}" for split in ("train", "test") for label in ("pos", "neg")]
ACL_LAYOUT = ("the layout must be train/pos, train/neg, test/pos and test/neg, each holding reviews named "
              "<id>_<rating>.txt (as in aclImdb_v1.tar.gz)")
IMDB_CSV_FORMAT = "the 50k-review IMDb CSV: a header review,sentiment, then one review per row"


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
        except CORRUPT as e:
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


class ImdbCsv(Source):
    kind = "IMDb CSV"

    def read(self, log=print) -> RawData:
        text = decode_utf8(read_bytes(self.path), self.path)
        if not text.strip():
            raise UserError(f"{self.path}: the file is empty; expected {IMDB_CSV_FORMAT}")
        raw = RawData(list(IMDB_CLASSES), {}, origins={"all": self.path})
        texts, labels = [], []
        names = {"negative": 0, "positive": 1, "neg": 0, "pos": 1}
        rows = CsvRows(text, self.path)
        for start, row in rows:
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
        if not texts:
            if rows.line <= 1:
                raise UserError(f"{self.path}: only the header, no reviews; expected {IMDB_CSV_FORMAT}")
            raise UserError(f"{self.path}: no reviews with text in the file")
        raw.parts["all"] = (texts, np.asarray(labels, np.int32))
        return raw
