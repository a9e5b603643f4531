"""tensorflow-datasets sources: a prepared directory (imdb_reviews, ag_news_subset), read without network,
and a download, tried only when nothing local is found and the download host answers (see
`lth_tf.data.sources.resolve_source`). tensorflow_datasets is imported only when one of them is read: the
import is slow and no other source needs it.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from lth_tf.data.ag_news import AG_NEWS_HELP, clean_ag_news
from lth_tf.data.imdb import IMDB_HELP
from lth_tf.data.raw import RawData, Source, tree_sha256
from lth_tf.errors import UserError

TFDS_NAMES = {"imdb": "imdb_reviews", "ag_news": "ag_news_subset"}


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
