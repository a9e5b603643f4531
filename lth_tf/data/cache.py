"""The on-disk data cache: its key, what it stores (`Corpus`) and how it is written and read back.

It holds the tokenised splits (token ids into a list of every distinct token, first-appearance order), not
the vocabulary: the vocabulary is re-derived from it in well under a second, so the CNN (50,000 words) and
the LSTM (25,000) share one tokenisation and every pruning level skips it. Writes go through lth_tf.atomic;
a damaged file is a miss, never an error.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from lth_tf import atomic
from lth_tf.config import DataConfig
from lth_tf.data.splits import TEST_FRACTION, EncodedSplit
from lth_tf.data.tokenizer import TOKENIZER_VERSION

# Bump when the cache key, the cache layout or the splitting changes, so that older caches are never misread.
# 2: the source identity is a SHA-256 of the content (was paths, sizes, mtimes); BOMs stripped; written with
# lth_tf.atomic.
CACHE_VERSION = 2


def default_cache_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "lth_tf")


def cache_key(cfg: DataConfig, identity: dict) -> tuple[str, dict]:
    """Hash of everything the cached corpus depends on. The vocabulary size is not in it: the vocabulary is
    built from the cached corpus on every load."""
    parts = {"cache_version": CACHE_VERSION, "tokenizer": TOKENIZER_VERSION, "dataset": cfg.dataset,
             "source": identity, "valid_fraction": float(cfg.valid_fraction), "split_seed": int(cfg.split_seed),
             "test_fraction": TEST_FRACTION}
    split = cfg.effective_split()
    if cfg.dataset == "imdb" or split != "study":  # AG News' study split keeps the key it always had
        parts["split"] = split
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20], parts


@dataclass
class Corpus:
    """What the cache stores: the splits as ids into `tokens` (every distinct token)."""
    tokens: list[str]
    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    sizes: tuple[int, int, int]  # train, valid, test, stored in that order
    class_names: list[str]
    meta: dict

    def split(self, i: int) -> EncodedSplit:
        start = sum(self.sizes[:i])
        a, b = self.offsets[start], self.offsets[start + self.sizes[i]]
        offs = self.offsets[start:start + self.sizes[i] + 1] - a
        return EncodedSplit(self.ids[a:b], offs, self.labels[start:start + self.sizes[i]])


def save_corpus(path: str, corpus: Corpus) -> None:
    """path.npz (the arrays and the metadata) and path.json (the metadata, readable), each written
    atomically with lth_tf.atomic; the .npz alone is read back."""
    meta = dict(corpus.meta, class_names=corpus.class_names, sizes=list(corpus.sizes))
    blob = "\n".join(corpus.tokens).encode("utf-8")
    arrays = {"ids": corpus.ids, "offsets": corpus.offsets, "labels": corpus.labels,
              "tokens": np.frombuffer(blob, np.uint8), "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    atomic.write_npz(path + ".npz", arrays, compressed=False)  # uncompressed: a cache hit loads faster
    atomic.write_json(path + ".json", meta)


def load_corpus(path: str, key: str, log=None) -> Corpus | None:
    """The cached corpus, or None when absent, made for another key, or damaged (truncated, empty, foreign,
    inconsistent): a damaged file is a miss, said in the log, and the caller rebuilds it."""
    try:
        z = atomic.read_npz(path + ".npz")
    except FileNotFoundError:
        return None
    except atomic.DamagedFile as e:
        if log is not None:
            log(f"data: cache {e}; rebuilding it")
        return None
    try:
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None
        tokens = z["tokens"].tobytes().decode("utf-8").split("\n") if z["tokens"].size else []
        sizes = tuple(int(n) for n in meta["sizes"])
        ids, offsets, labels = z["ids"], z["offsets"], z["labels"]
        if len(sizes) != 3 or len(offsets) != sum(sizes) + 1 or len(labels) != sum(sizes) \
                or offsets[-1] != len(ids) or (len(ids) and not 0 <= ids.min() <= ids.max() < len(tokens)):
            raise ValueError("arrays of inconsistent sizes")
        return Corpus(tokens, ids, offsets, labels, sizes, list(meta["class_names"]), meta)
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
        if log is not None:
            log(f"data: cache {path}.npz: damaged ({type(e).__name__}: {e}); rebuilding it")
        return None
