"""Regenerate the small datasets shipped in lth_tf/data/samples/ (deterministic: same inputs, same bytes).

    python -m lth_tf.data.make_samples --imdb=../shared/data/imdb/aclImdb_labelled.tar.xz \\
        --ag_news=../shared/data/ag_news/test.csv.gz

imdb_sample.csv.gz: 3,000 reviews (1,500 per class) drawn with a fixed seed from all 50,000 labelled IMDb
reviews. ag_news_sample.csv.gz: 2,000 rows (500 per class) from the AG News test split. Both are CSV with a
label,text header (label = class name); AG News texts are title + " " + description, already cleaned.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import os

import numpy as np

from lth_tf.data import sources

SEED = 20261124


def balanced_choice(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise SystemExit(f"only {len(members)} examples of class {c}, {per_class} wanted")
        picked.append(rng.choice(members, per_class, replace=False))
    return rng.permutation(np.concatenate(picked))


def write_sample(path: str, texts: list[str], labels: np.ndarray, class_names: list[str]) -> int:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["label", "text"])
    for text, label in zip(texts, labels):
        writer.writerow([class_names[label], text])
    with open(path + ".tmp", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as gz:
            gz.write(buf.getvalue().encode("utf-8"))
    os.replace(path + ".tmp", path)
    return os.path.getsize(path)


def imdb_sample(source_path: str, out: str, per_class: int = 1500) -> int:
    src = sources.resolve_source("imdb", source_path, online=lambda host: False)
    raw = src.read()
    texts = raw.parts["train"][0] + raw.parts["test"][0]
    labels = np.concatenate([raw.parts["train"][1], raw.parts["test"][1]])
    idx = balanced_choice(labels, per_class, SEED)
    return write_sample(out, [texts[i] for i in idx], labels[idx], raw.class_names)


def ag_news_sample(test_csv: str, out: str, per_class: int = 500) -> int:
    raw = sources.RawData(list(sources.AG_NEWS_CLASSES), {})
    texts, labels = sources.read_ag_news_csv(sources.read_bytes(test_csv), test_csv, 4, raw)
    idx = balanced_choice(labels, per_class, SEED + 1)
    return write_sample(out, [texts[i] for i in idx], labels[idx], raw.class_names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imdb", help="aclImdb folder or archive (or the folder holding it)")
    parser.add_argument("--ag_news", help="AG News test.csv or test.csv.gz")
    parser.add_argument("--out_dir", default=sources.SAMPLES_DIR)
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.imdb:
        size = imdb_sample(args.imdb, os.path.join(args.out_dir, "imdb_sample.csv.gz"))
        print(f"imdb_sample.csv.gz: {size:,} bytes")
    if args.ag_news:
        size = ag_news_sample(args.ag_news, os.path.join(args.out_dir, "ag_news_sample.csv.gz"))
        print(f"ag_news_sample.csv.gz: {size:,} bytes")
    if not (args.imdb or args.ag_news):
        parser.error("give --imdb and/or --ag_news")


if __name__ == "__main__":
    main()
