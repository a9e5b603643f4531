"""The packaged samples: small label,text CSVs (label = class name) shipped in lth_tf/data/samples/ and made
by `python -m lth_tf.data.make_samples`, so that `--dataset=imdb_sample` or `ag_news_sample` runs with no
download and no --data_dir.
"""
from __future__ import annotations

import os

import numpy as np

from lth_tf.data.ag_news import AG_NEWS_CLASSES
from lth_tf.data.imdb import IMDB_CLASSES
from lth_tf.data.raw import CsvRows, RawData, Source, decode_utf8, file_sha256, read_bytes
from lth_tf.errors import UserError

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")


class Sample(Source):
    """A CSV (label,text; label = class name) shipped in lth_tf/data/samples/, made by make_samples.py."""
    kind = "packaged sample"
    CLASSES = {"imdb_sample": IMDB_CLASSES, "ag_news_sample": AG_NEWS_CLASSES}

    def identity(self) -> dict:
        return {"kind": self.kind, "name": os.path.basename(self.path), "sha256": file_sha256(self.path)}

    def read(self, log=print) -> RawData:
        return read_sample_csv(self.path, self.CLASSES[self.dataset])


def read_sample_csv(path: str, class_names: list[str]) -> RawData:
    text = decode_utf8(read_bytes(path), path)
    raw = RawData(list(class_names), {}, origins={"all": path})
    texts, labels = [], []
    for start, row in CsvRows(text, path):
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
    raw.parts["all"] = (texts, np.asarray(labels, np.int32))
    return raw
