"""Measure the data layer (`lth_tf.data`) on the real data (the numbers in docs/data.md). From the
repository root:

    python -m benchmarks.data_timing --imdb=../shared/data/imdb \\
        --glove=../shared/data/glove/glove.6B.50d.txt.xz --ag_news_test=../shared/data/ag_news/test.csv.gz

Uses a fresh temporary cache (so the first load is uncached) and deletes it afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

import numpy as np


def _machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores{mem}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imdb", required=True, help="aclImdb folder or archive, or the folder holding it")
    parser.add_argument("--glove", default="", help="GloVe file for the coverage numbers")
    parser.add_argument("--ag_news_test", default="", help="AG News test.csv(.gz) for its counts")
    parser.add_argument("--python_tokenizer", action="store_true",
                        help="also time the pure-Python tokeniser on all reviews and compare it with TensorFlow's")
    parser.add_argument("--json", default="", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    from lth_tf.config import DataConfig
    from lth_tf.data import load_glove, make_dataset, plan_batches, prepare_data, sources, tokenize
    from lth_tf.data.pipeline import padding_fraction
    from lth_tf.data.prepare import length_stats, tokenize_corpus
    from lth_tf.keras import tf

    out = {"machine": _machine(), "tensorflow": tf.__version__}
    print(f"machine: {out['machine']}; TensorFlow {tf.__version__}")
    cache = tempfile.mkdtemp(prefix="lth_tf_timing_")
    quiet = lambda *a: None  # noqa: E731
    try:
        cfg = DataConfig(dataset="imdb", data_dir=args.imdb, cache_dir=cache)
        t = time.perf_counter()
        cnn = prepare_data(cfg, 50_000, log=quiet)
        uncached = time.perf_counter() - t
        timings = cnn.stats["timings"]
        print(f"\nIMDb uncached (read + split + tokenise + vocabulary + encode + write cache): {uncached:.1f} s "
              f"(read {timings['read_s']} s, tokenise {timings['tokenize_s']} s, "
              f"cache write {timings.get('cache_write_s')} s); source: {cnn.stats['source']}")
        t = time.perf_counter()
        cnn2 = prepare_data(cfg, 50_000, log=quiet)
        cached50 = time.perf_counter() - t
        t = time.perf_counter()
        lstm = prepare_data(cfg, 25_000, log=quiet)
        cached25 = time.perf_counter() - t
        assert cnn2.stats["cache"]["hit"] and lstm.stats["cache"]["hit"]
        print(f"IMDb cached reload: {cached50:.2f} s (vocabulary 50,000), {cached25:.2f} s (25,000)")
        out["imdb"] = {"uncached_s": round(uncached, 2), "cached_s_50k": round(cached50, 2),
                       "cached_s_25k": round(cached25, 2), "timings": timings, "counts": cnn.stats["counts"],
                       "class_counts": cnn.stats["class_counts"], "token_lengths": cnn.stats["token_lengths"],
                       "vocab_50k": cnn.stats["vocab"], "vocab_25k": lstm.stats["vocab"]}

        print("\nsplit   texts   tokens      mean  median  p90    p99     max")
        for split, s in cnn.stats["token_lengths"].items():
            print(f"{split:6s} {s['n']:6,d} {s['tokens']:10,d} {s['mean']:7.1f} {s['median']:6.0f} {s['p90']:6.0f} "
                  f"{s['p99']:7.1f} {s['max']:6,d}")
        v = cnn.stats["vocab"]
        print(f"\ntraining token types {v['train_types']:,}, training tokens {v['train_tokens']:,}")
        for name, d in (("50,000", cnn), ("25,000", lstm)):
            s = d.stats["vocab"]
            print(f"vocabulary {name} (+2 = {s['size']:,}): {100 * s['train_token_coverage']:.2f}% of training "
                  f"tokens; <unk> rate train {100 * s['unk_rate']['train']:.2f}% valid "
                  f"{100 * s['unk_rate']['valid']:.2f}% test {100 * s['unk_rate']['test']:.2f}%")

        batches = {}
        lengths = cnn.train.lengths()
        for bucket in (True, False):
            ds = make_dataset(cnn.train, 64, shuffle_seed=1, bucket=bucket)
            t = time.perf_counter()
            n = sum(int(y.shape[0]) for _, y in ds)
            secs = time.perf_counter() - t
            pad = padding_fraction(lengths, plan_batches(lengths, 64, 1, bucket))
            batches["bucket" if bucket else "no_bucket"] = {"epoch_s": round(secs, 2), "padding": round(pad, 4)}
            print(f"one training epoch of batches (64, {n:,} texts), bucket={bucket}: {secs:.2f} s, "
                  f"{100 * pad:.1f}% of the cells are padding")
        out["batches"] = batches

        if args.glove:
            out["glove"] = {}
            print()
            for name, d in (("50k", cnn), ("25k", lstm)):
                t = time.perf_counter()
                _, info = load_glove(args.glove, d.vocab, log=quiet, counts=d.vocab_counts)
                info["seconds"] = round(time.perf_counter() - t, 2)
                out["glove"][name] = info
                words = len(d.vocab) - 2
                print(f"GloVe {info['dim']}d, vocabulary {name} ({words:,} words), {info['seconds']} s: "
                      f"by type {100 * info['coverage_exact']:.2f}% exact, {100 * info['coverage']:.2f}% with "
                      f"the lower-case fallback ({info['found_lower']:,} words); by training-token occurrence "
                      f"{100 * info['token_coverage_exact']:.2f}% exact, {100 * info['token_coverage']:.2f}% with "
                      f"the fallback (the <unk> share, {100 * d.vocab_counts[1] / d.vocab_counts.sum():.2f}%, "
                      f"counts as not covered)")

        if args.ag_news_test:
            raw = sources.RawData(list(sources.AG_NEWS_CLASSES), {})
            t = time.perf_counter()
            texts, labels = sources.read_ag_news_csv(sources.read_bytes(args.ag_news_test), args.ag_news_test,
                                                     4, raw)
            _, offsets = tokenize_corpus(texts, {})
            secs = time.perf_counter() - t
            counts = dict(zip(sources.AG_NEWS_CLASSES, np.bincount(labels, minlength=4).tolist()))
            ls = length_stats(np.diff(offsets))
            out["ag_news_test"] = {"rows": len(texts), "per_class": counts, "skipped": raw.skipped,
                                   "token_lengths": ls, "read_tokenize_s": round(secs, 2)}
            print(f"\nAG News test split: {len(texts):,} rows, {counts}, skipped {sum(raw.skipped.values())}; "
                  f"tokens per text mean {ls['mean']}, median {ls['median']}, p90 {ls['p90']}, p99 {ls['p99']}, "
                  f"max {ls['max']}; read + tokenise {secs:.2f} s")

        if args.python_tokenizer:
            src = sources.resolve_source("imdb", args.imdb, online=lambda host: False)
            raw = src.read(quiet)
            texts = [t for part in raw.parts.values() for t in part[0]]
            t = time.perf_counter()
            py = [tokenize(x) for x in texts]
            py_s = time.perf_counter() - t
            index: dict = {}
            t = time.perf_counter()
            ids, offsets = tokenize_corpus(texts, index)
            tf_s = time.perf_counter() - t
            words = list(index)
            differ = sum(1 for i, toks in enumerate(py)
                         if [w.decode() for w in (words[j] for j in ids[offsets[i]:offsets[i + 1]])] != toks)
            out["python_tokenizer"] = {"texts": len(texts), "python_s": round(py_s, 2), "tf_s": round(tf_s, 2),
                                       "texts_that_differ": differ}
            print(f"\ntokenising all {len(texts):,} reviews: Python re {py_s:.1f} s, TensorFlow {tf_s:.1f} s; "
                  f"texts whose tokens differ: {differ}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
