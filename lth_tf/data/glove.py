"""load_glove: an embedding matrix for a vocabulary from a GloVe-format text file.

GloVe 6B is lower-cased and our tokens are not: a token missing from the file takes the vector of its
lower-cased form when that exists (the "lower" count in the returned info). Rows of tokens found in neither
way are drawn from N(0, s^2), s = the standard deviation of the file's vectors that were used (so they look
like GloVe rows, not like N(0,1) rows 2-3x larger), with a fixed seed; <pad> and <unk> (rows 0 and 1) are zero,
as in the study.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import time
import zipfile
import zlib

import numpy as np

from lth_tf.errors import UserError

SPECIALS = 2  # <pad>, <unk>


def _open(path: str):
    """(binary line iterator, name for messages)."""
    member = None
    if not os.path.exists(path) and ".zip:" in path:
        path, member = path.split(".zip:", 1)
        path += ".zip"
    if not os.path.isfile(path):
        raise UserError(f"--glove_path={path}: no such file; download glove.6B.zip "
                        f"(https://nlp.stanford.edu/projects/glove/) and give the path of a .txt (or .gz/.xz/.zip)")
    low = path.lower()
    if low.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as e:
            raise UserError(f"--glove_path={path}: not a readable zip file ({e})") from None
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if member is None:
            candidates = [n for n in names if os.path.basename(n).lower().startswith("glove")
                          and n.lower().endswith(".txt")]
            if len(candidates) != 1:
                if not candidates:
                    raise UserError(f"--glove_path={path}: no glove*.txt inside (found: {', '.join(names[:5])})")
                raise UserError(f"--glove_path={path}: several GloVe files inside ({', '.join(candidates)}); "
                                f"choose one as --glove_path={path}:{candidates[0]}")
            member = candidates[0]
        if member not in names:
            raise UserError(f"--glove_path={path}: no member {member} (found: {', '.join(names[:5])})")
        return io.BufferedReader(archive.open(member)), f"{path}:{member}"
    if low.endswith(".gz"):
        return gzip.open(path, "rb"), path
    if low.endswith(".xz"):
        return lzma.open(path, "rb"), path
    if low.endswith(".bz2"):
        return bz2.open(path, "rb"), path
    return open(path, "rb"), path


def _floats(text: bytes, where: str, line: int) -> np.ndarray:
    """The vector on one line; a value that is not a number, or not finite (nan, inf, or beyond float32's
    range), is refused with its line: one such row would poison the embedding and every model using it."""
    try:
        with np.errstate(over="ignore"):
            v = np.array(text.split(), dtype=np.float32)
    except ValueError:
        raise UserError(f"{where}:{line}: a value is not a number") from None
    if not np.isfinite(v).all():
        bad = text.split()[int(np.flatnonzero(~np.isfinite(v))[0])].decode("utf-8", "replace")
        raise UserError(f"{where}:{line}: value {bad!r:.30} is not a finite number (nan, inf, or beyond float32); "
                        f"the GloVe file is damaged: download it again or fix that line")
    return v


def load_glove(path: str, vocab: list[str], log=print, *, counts=None, lowercase_fallback: bool = True,
               seed: int = 0) -> tuple[np.ndarray, dict]:
    """float32 [len(vocab), dim] and an info dict: dim (from the file), found / found_exact / found_lower
    (vocabulary words with a vector), coverage (share of the words after <pad>/<unk> with a vector) and, given
    `counts` (training occurrences per vocabulary entry, e.g. PreparedData.vocab_counts), token_coverage (share
    of the training tokens, <unk> occurrences included, whose word has a vector). Accepts .txt, .gz, .xz, .bz2
    and .zip (its one glove*.txt member, or path.zip:member). Every line must hold a word and `dim` numbers."""
    started = time.perf_counter()
    words = [w.encode("utf-8") for w in vocab]
    wanted = set(words[SPECIALS:])
    if lowercase_fallback:
        wanted |= {w.lower().encode("utf-8") for w in vocab[SPECIALS:]}
    vectors: dict[bytes, np.ndarray] = {}
    dim, lines = None, 0
    f, where = _open(path)
    try:
        with f:
            for lines, raw in enumerate(f, 1):
                line = raw.rstrip()
                if not line:
                    if lines == 1:
                        raise UserError(f"{where}:1: empty line")
                    continue
                fields = line.count(b" ")
                if dim is None:
                    head = line.split()
                    if len(head) == 2 and all(x.isdigit() for x in head):  # word2vec-style header "rows dim"
                        dim = int(head[1])
                        continue
                    dim = fields
                    if dim < 1:
                        raise UserError(f"{where}:1: expected a word and its vector, found {line[:40]!r}")
                if fields != dim:
                    raise UserError(f"{where}:{lines}: {fields} values, but the file's vectors have {dim} "
                                    f"(line 1); the file is inconsistent or truncated")
                space = line.index(b" ")
                word = line[:space]
                if word in wanted:
                    vectors[word] = _floats(line[space + 1:], where, lines)
    except (EOFError, OSError, lzma.LZMAError, zlib.error, zipfile.BadZipFile) as e:
        raise UserError(f"--glove_path={path}: cannot read it, truncated or corrupt ({e})") from None
    if dim is None:
        raise UserError(f"--glove_path={path}: no vectors in the file")

    matrix = np.zeros((len(vocab), dim), np.float32)
    exact = np.zeros(len(vocab), bool)
    lower = np.zeros(len(vocab), bool)
    for i in range(SPECIALS, len(vocab)):
        v = vectors.get(words[i])
        if v is not None:
            matrix[i], exact[i] = v, True
        elif lowercase_fallback:
            v = vectors.get(vocab[i].lower().encode("utf-8"))
            if v is not None:
                matrix[i], lower[i] = v, True
    found = exact | lower
    std = float(matrix[found].std()) if found.any() else 1.0
    missing = np.flatnonzero(~found)
    missing = missing[missing >= SPECIALS]
    rng = np.random.default_rng(seed)
    matrix[missing] = rng.normal(0.0, std, size=(len(missing), dim)).astype(np.float32)
    n_words = max(1, len(vocab) - SPECIALS)
    info = {"path": path, "dim": int(dim), "lines": int(lines), "vocab_size": len(vocab),
            "found": int(found.sum()), "found_exact": int(exact.sum()), "found_lower": int(lower.sum()),
            "coverage": float(found.sum() / n_words), "coverage_exact": float(exact.sum() / n_words),
            "oov_init": f"normal(0, {std:.4f})", "oov_std": std, "seconds": round(time.perf_counter() - started, 2)}
    if counts is not None:
        c = np.asarray(counts, np.float64)
        total = max(1.0, c.sum())
        info["token_coverage"] = float(c[found].sum() / total)
        info["token_coverage_exact"] = float(c[exact].sum() / total)
    log(f"GloVe {where}: dim {dim}, {info['found']:,} of {n_words:,} words found "
        f"({100 * info['coverage']:.1f}%; {info['found_lower']:,} through their lower-case form)"
        + (f", {100 * info['token_coverage']:.1f}% of training tokens" if counts is not None else ""))
    if not found.any():
        log(f"GloVe: warning: no vocabulary word is in {where}")
    return matrix, info
