"""prepare_data: raw texts -> split -> tokenise -> vocabulary (training split only) -> encode, cached on disk.

The cache (lth_tf/data/cache.py) holds the tokenised splits, not the vocabulary: `build_vocab` re-derives it
from them on every call, so models with different vocabulary sizes share one tokenisation. Where the texts
come from is lth_tf/data/sources.py; the splits and how they are drawn, lth_tf/data/splits.py.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from lth_tf.config import SPLITS, DataConfig
from lth_tf.data import sources
from lth_tf.data.cache import Corpus, cache_key, default_cache_dir, load_corpus, save_corpus
from lth_tf.data.splits import TEST_FRACTION, EncodedSplit, stratified_split
from lth_tf.data.tokenizer import TOKENIZER_VERSION
from lth_tf.errors import UserError

PAD, UNK = "<pad>", "<unk>"
_BLANK_RE = re.compile(r"(?:[\s\x00-\x08\x0e-\x1b\x7f]|<[Bb][Rr] */?>)*")


@dataclass
class PreparedData:
    vocab: list[str]  # 0 '<pad>', 1 '<unk>', then the most frequent training tokens
    class_names: list[str]
    train: EncodedSplit
    valid: EncodedSplit
    test: EncodedSplit
    stats: dict = field(default_factory=dict)
    # Occurrences in the training split of each vocabulary entry (<pad>: 0, <unk>: all out-of-vocabulary ones).
    vocab_counts: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# ------------------------------------------------------------------------------------------ tokenising ---
def tokenize_corpus(texts: list[str], index: dict, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Tokenise with the TensorFlow rules (`tokenize_tf`, the ones exported models run), and map every token
    to an id in `index` (token bytes -> id, grown in first-appearance order). Returns (ids, offsets)."""
    from lth_tf.data.tokenizer import tokenize_tf
    from lth_tf.keras import tf

    ids, lengths = [], []
    for start in range(0, len(texts), chunk):
        ragged = tokenize_tf(tf.constant(texts[start:start + chunk], tf.string))
        uniq, pos = tf.unique(ragged.flat_values)
        new = np.fromiter((index.setdefault(b, len(index)) for b in uniq.numpy()), np.int32)
        ids.append(new[pos.numpy()])
        lengths.append(ragged.row_lengths().numpy())
    offsets = np.zeros(len(texts) + 1, np.int64)
    if texts:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return (np.concatenate(ids) if ids else np.zeros(0, np.int32)), offsets


def length_stats(lengths: np.ndarray) -> dict:
    if len(lengths) == 0:
        return {"n": 0}
    q = np.percentile(lengths, [50, 90, 99])
    return {"n": int(len(lengths)), "mean": round(float(lengths.mean()), 1), "median": round(float(q[0]), 1),
            "p90": round(float(q[1]), 1), "p99": round(float(q[2]), 1), "min": int(lengths.min()),
            "max": int(lengths.max()), "tokens": int(lengths.sum())}


# ---------------------------------------------------------------------------------------------- build ---
def _validate(cfg: DataConfig) -> None:
    sources.check_dataset(cfg.dataset)
    if cfg.split not in SPLITS:
        raise UserError(f"--split={cfg.split}: choose {', '.join(SPLITS)}")
    cfg.check()
    if not 0.0 <= cfg.valid_fraction < 1.0:
        raise UserError(f"--valid_fraction={cfg.valid_fraction}: must be at least 0 and below 1")


def check_classes(raw: sources.RawData, source: sources.Source) -> None:
    """Every part the source gave (its train and test files or folders, or its one file) must hold at least
    one text of every class; otherwise a model would train or be scored without that class."""
    names = raw.class_names
    for part, (texts, labels) in raw.parts.items():
        where = raw.origins.get(part, source.describe())
        what = "" if part == "all" else f"{part} "
        if len(texts) == 0:
            raise UserError(f"{where}: no {what}examples at all")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise UserError(f"{where}: label {int(labels.max())} outside the {len(names)} classes "
                            f"({', '.join(names)})")
        present = np.bincount(labels, minlength=len(names))
        if (present == 0).any():
            missing = [names[c] for c in np.flatnonzero(present == 0)]
            raise UserError(f"{where}: no {what}examples of class {', '.join(missing)}; every class "
                            f"({', '.join(names)}) must appear in every split of the data (a missing or empty "
                            f"class folder, a file of one class only?)")


def build_corpus(cfg: DataConfig, source: sources.Source, log=print) -> Corpus:
    timings = {}
    t = time.perf_counter()
    raw = source.read(log)
    timings["read_s"] = round(time.perf_counter() - t, 2)
    num_classes = len(raw.class_names)

    if "all" in raw.parts and cfg.dataset == "imdb" and cfg.split == "official":
        raise UserError(f"--split=official: {source.describe()} has no official train/test split; use "
                        f"--split=study or the aclImdb folder/archive")
    for part, (texts, labels) in list(raw.parts.items()):
        keep = [i for i, text in enumerate(texts) if not _BLANK_RE.fullmatch(text)]
        if len(keep) < len(texts):
            for i in sorted(set(range(len(texts))) - set(keep)):
                raw.skip(f"{source.describe()} [{part} #{i}]", "empty text (only spaces or <br />)")
            raw.parts[part] = ([texts[i] for i in keep], labels[keep])
    check_classes(raw, source)  # before pooling, which would hide a class missing from one part
    pooled_from = {}
    if pools(cfg) and "all" not in raw.parts:
        pooled_from = {part: len(raw.parts[part][0]) for part in ("train", "test") if part in raw.parts}
        given = [raw.parts.pop(part) for part in pooled_from]
        raw.parts["all"] = ([t for texts, _ in given for t in texts], np.concatenate([lab for _, lab in given]))

    t = time.perf_counter()
    index: dict = {}
    encoded = {}
    for part, (texts, labels) in raw.parts.items():
        ids, offsets = tokenize_corpus(texts, index)
        encoded[part] = EncodedSplit(ids, offsets, labels)
        if np.any(np.diff(offsets) == 0):  # cannot happen after the blank check; keep the promise anyway
            raise UserError(f"{source.describe()}: a {part} text gave no tokens")
    timings["tokenize_s"] = round(time.perf_counter() - t, 2)

    for part, split in encoded.items():
        if len(split) == 0:
            raise UserError(f"{source.describe()}: the {part} split is empty")
        present = np.bincount(split.labels, minlength=num_classes)
        if (present == 0).any():
            missing = [raw.class_names[c] for c in np.flatnonzero(present == 0)]
            raise UserError(f"{source.describe()}: no {part} examples of class {', '.join(missing)}")

    rng_test = np.random.default_rng([cfg.split_seed, 1])
    rng_valid = np.random.default_rng([cfg.split_seed, 2])
    if "all" in encoded:
        pooled = encoded["all"]
        train_idx, test_idx = stratified_split(pooled.labels, TEST_FRACTION, rng_test, num_classes)
        train_all, test = pooled.take(train_idx), pooled.take(test_idx)
    else:
        train_all, test = encoded["train"], encoded["test"]
    train_idx, valid_idx = stratified_split(train_all.labels, cfg.valid_fraction, rng_valid, num_classes)
    train, valid = train_all.take(train_idx), train_all.take(valid_idx)

    splits = (train, valid, test)
    ids = np.concatenate([s.token_ids for s in splits]).astype(np.int32)
    offsets = np.concatenate([[0]] + [s.offsets[1:] + sum(len(x.token_ids) for x in splits[:i])
                                      for i, s in enumerate(splits)]).astype(np.int64)
    labels = np.concatenate([s.labels for s in splits]).astype(np.int32)
    tokens = [b.decode("utf-8") for b in index]
    meta = {"source": source.describe(), "source_kind": source.kind, "timings": timings,
            "skipped": dict(raw.skipped), "skipped_examples": list(raw.skipped_examples),
            "raw_counts": {p: len(s) for p, s in encoded.items()}, "pooled_from": pooled_from}
    return Corpus(tokens, ids, offsets, labels, tuple(len(s) for s in splits), list(raw.class_names), meta)


def pools(cfg: DataConfig) -> bool:
    """Whether the train and test parts a source gives are pooled and split 80/20 (TEST_FRACTION): IMDb's study
    split and AG News' --split=pooled. (The samples and the IMDb CSV have one part only, always split so.)"""
    split = cfg.effective_split()
    return (cfg.dataset == "imdb" and split == "study") or (cfg.dataset == "ag_news" and split == "pooled")


def split_label(cfg: DataConfig, corpus_meta: dict) -> tuple[str, str | None]:
    """(data.json's stats["split"], stats["split_note"]): the note says when a split is not the study's."""
    split = cfg.effective_split()
    if cfg.dataset == "imdb":
        return split, None
    if cfg.dataset == "ag_news" and split == "pooled":
        parts = corpus_meta.get("pooled_from") or {}
        rows = " + ".join(f"{n:,} {p}.csv" for p, n in parts.items()) or "every labelled row"
        return "pooled", (f"pooled: {rows} rows split 80/20 train/test (stratified, --split_seed="
                          f"{cfg.split_seed}), then {cfg.valid_fraction:g} of train held out for validation; "
                          f"NOT the study's AG News protocol (the given 120,000 train / 7,600 test rows)")
    if cfg.dataset == "ag_news":
        return "given", None
    return "80/20", None


def build_vocab(tokens: list[str], train_ids: np.ndarray, vocab_size: int) -> tuple[list[str], np.ndarray,
                                                                                     np.ndarray]:
    """The vocab_size most frequent training tokens (ties: by token string), after <pad> and <unk>.
    Returns (vocab, mapping from corpus token id to vocab id, training counts per vocab entry)."""
    counts = np.bincount(train_ids, minlength=len(tokens)).astype(np.int64)
    seen = np.flatnonzero(counts)
    ranked = sorted(seen.tolist(), key=lambda i: (-counts[i], tokens[i]))
    if vocab_size > 0:
        ranked = ranked[:vocab_size]
    chosen = np.asarray(ranked, np.int64)
    mapping = np.ones(len(tokens), np.int32)  # <unk>
    mapping[chosen] = np.arange(2, len(chosen) + 2, dtype=np.int32)
    vocab_counts = np.concatenate([[0, counts.sum() - counts[chosen].sum()], counts[chosen]]).astype(np.int64)
    return [PAD, UNK] + [tokens[i] for i in ranked], mapping, vocab_counts


def prepare_data(cfg: DataConfig, vocab_size: int, log=print) -> PreparedData:
    """Load, split, tokenise and encode the dataset of `cfg` (see docs/data.md). The tokenised splits are
    cached in cfg.cache_dir (default ~/.cache/lth_tf) so later calls skip reading and tokenising."""
    started = time.perf_counter()
    _validate(cfg)
    if vocab_size < 0:
        raise UserError(f"--vocab_size={vocab_size}: must be positive (0 = every training token)")
    source = sources.resolve_source(cfg.dataset, cfg.data_dir, split=cfg.effective_split())
    t = time.perf_counter()
    identity = source.identity()  # reads the content: the key changes whenever a text or a label does
    hash_s = time.perf_counter() - t
    key, key_parts = cache_key(cfg, identity)
    cache_root = os.path.join(os.path.expanduser(cfg.cache_dir) if cfg.cache_dir else default_cache_dir(), "data")
    path = os.path.join(cache_root, f"{cfg.dataset}-{key}")

    t = time.perf_counter()
    corpus = load_corpus(path, key, log)
    hit = corpus is not None
    if hit:
        load_s = time.perf_counter() - t
        log(f"data: {cfg.dataset} from cache {path}.npz ({load_s:.1f}s; source hashed in {hash_s:.1f}s)")
    else:
        log(f"data: reading {cfg.dataset} from {source.describe()} ...")
        corpus = build_corpus(cfg, source, log)
        if source.identity() != identity:  # changed between hashing and reading: the key would lie
            raise UserError(f"{source.describe()}: the data changed while it was being read; run again once "
                            f"nothing is writing to it")
        corpus.meta.update(key=key, key_parts=key_parts)
        load_s = None
        try:
            os.makedirs(cache_root, exist_ok=True)
            t = time.perf_counter()
            save_corpus(path, corpus)
            corpus.meta["timings"]["cache_write_s"] = round(time.perf_counter() - t, 2)
        except OSError as e:
            log(f"data: warning: cannot write the cache in {cache_root} ({e.strerror}); continuing without it")

    t = time.perf_counter()
    train_c, valid_c, test_c = (corpus.split(i) for i in range(3))
    vocab, mapping, vocab_counts = build_vocab(corpus.tokens, train_c.token_ids, vocab_size)
    train, valid, test = (EncodedSplit(mapping[s.token_ids], s.offsets, s.labels) for s in (train_c, valid_c, test_c))
    vocab_s = time.perf_counter() - t

    train_types = int(np.count_nonzero(np.bincount(train_c.token_ids, minlength=len(corpus.tokens))))
    stats = _stats(cfg, corpus, vocab, vocab_counts, (train, valid, test), hit, path, train_types)
    stats["timings"] = dict(corpus.meta.get("timings", {}), source_hash_s=round(hash_s, 2),
                            vocab_encode_s=round(vocab_s, 2), total_s=round(time.perf_counter() - started, 2))
    stats["cache"]["source_sha256"] = identity.get("sha256")
    if hit:
        stats["timings"]["cache_load_s"] = round(load_s, 2)
    counts = stats["counts"]
    log(f"data: {cfg.dataset}: train {counts['train']:,} / valid {counts['valid']:,} / test {counts['test']:,}; "
        f"vocabulary <pad>, <unk> + {len(vocab) - 2:,} of {stats['vocab']['train_types']:,} training token types "
        f"({100 * stats['vocab']['train_token_coverage']:.2f}% of training tokens)")
    skipped = stats["skipped"]
    if skipped["count"]:
        log(f"data: skipped {skipped['count']} texts: "
            + ", ".join(f"{r}: {n}" for r, n in skipped["reasons"].items())
            + f" (first: {skipped['examples'][0]})")
    return PreparedData(vocab, list(corpus.class_names), train, valid, test, stats, vocab_counts)


def _stats(cfg, corpus: Corpus, vocab, vocab_counts, splits, hit: bool, path: str, train_types: int) -> dict:
    names = ("train", "valid", "test")
    return {
        "dataset": cfg.dataset,
        "source": corpus.meta.get("source"),
        "source_kind": corpus.meta.get("source_kind"),
        "split": split_label(cfg, corpus.meta)[0],
        **({"split_note": note} if (note := split_label(cfg, corpus.meta)[1]) else {}),
        "split_seed": cfg.split_seed,
        "valid_fraction": cfg.valid_fraction,
        "tokenizer": TOKENIZER_VERSION,
        "class_names": list(corpus.class_names),
        "counts": {n: len(s) for n, s in zip(names, splits)},
        "class_counts": {n: np.bincount(s.labels, minlength=len(corpus.class_names)).tolist()
                         for n, s in zip(names, splits)},
        "raw_counts": corpus.meta.get("raw_counts", {}),
        "skipped": {"count": int(sum(corpus.meta.get("skipped", {}).values())),
                    "reasons": corpus.meta.get("skipped", {}),
                    "examples": corpus.meta.get("skipped_examples", [])},
        "cache": {"hit": hit, "path": path + ".npz", "key": corpus.meta.get("key")},
        "token_lengths": {n: length_stats(s.lengths()) for n, s in zip(names, splits)},
        "vocab": {"size": len(vocab), "train_types": train_types,
                  "train_tokens": int(vocab_counts.sum()),
                  "train_token_coverage": float(1 - vocab_counts[1] / max(1, vocab_counts.sum())),
                  "unk_rate": {n: float(np.mean(s.token_ids == 1)) if len(s.token_ids) else 0.0
                               for n, s in zip(names, splits)}},
    }
