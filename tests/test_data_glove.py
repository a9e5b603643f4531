"""load_glove: formats, coverage, lower-case fallback, bad files."""
import gzip
import lzma
import os
import time
import zipfile

import numpy as np
import pytest

from lth_tf.data import load_glove
from lth_tf.errors import UserError

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "glove_tiny.txt")
VOCAB = ["<pad>", "<unk>", "the", "The", "movie", "Paris", "zzzunseen", ",", "great"]


def quiet(*args):
    pass


def test_fixture_file_is_what_the_tests_expect():
    with open(FIXTURE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 6 and all(len(line.split()) == 4 for line in lines)


@pytest.fixture(params=[".txt", ".gz", ".xz", ".zip"])
def glove_file(request, tmp_path):
    data = open(FIXTURE, "rb").read()
    suffix = request.param
    path = str(tmp_path / f"glove.test.3d.txt{suffix if suffix != '.txt' else ''}")
    if suffix == ".gz":
        open(path, "wb").write(gzip.compress(data))
    elif suffix == ".xz":
        open(path, "wb").write(lzma.compress(data))
    elif suffix == ".zip":
        path = str(tmp_path / "glove.test.zip")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("glove.test.3d.txt", data)
            z.writestr("README", "not vectors")
    else:
        open(path, "wb").write(data)
    return path


def test_formats_and_lookup(glove_file):
    m, info = load_glove(glove_file, VOCAB, log=quiet)
    assert m.dtype == np.float32 and m.shape == (len(VOCAB), 3) and info["dim"] == 3
    assert not m[0].any() and not m[1].any()  # <pad> and <unk> are zero
    assert m[2].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert m[3].tolist() == pytest.approx([0.1, 0.2, 0.3])  # "The" falls back to "the"
    assert m[5].tolist() == pytest.approx([1.0, -1.0, 0.5])  # "Paris" has its own (cased) entry
    assert m[7].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert m[6].any()  # unseen: random, not zero
    assert (info["found"], info["found_exact"], info["found_lower"]) == (6, 5, 1)
    assert info["coverage"] == pytest.approx(6 / 7) and info["coverage_exact"] == pytest.approx(5 / 7)


def test_unknown_rows_are_seeded_and_scaled(tmp_path):
    a, info = load_glove(FIXTURE, VOCAB, log=quiet)
    b, _ = load_glove(FIXTURE, VOCAB, log=quiet)
    c, _ = load_glove(FIXTURE, VOCAB, log=quiet, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a[6], c[6])
    found_std = np.concatenate([a[2:6], a[7:]]).std()
    assert info["oov_std"] == pytest.approx(found_std, rel=1e-5)


def test_token_coverage_and_no_fallback():
    counts = np.array([0, 10, 50, 20, 5, 1, 4, 30, 0])
    _, info = load_glove(FIXTURE, VOCAB, log=quiet, counts=counts)
    assert info["token_coverage"] == pytest.approx((50 + 20 + 5 + 1 + 30) / counts.sum())
    assert info["token_coverage_exact"] == pytest.approx((50 + 5 + 1 + 30) / counts.sum())
    _, strict = load_glove(FIXTURE, VOCAB, log=quiet, lowercase_fallback=False)
    assert strict["found"] == 5 and strict["found_lower"] == 0


def test_wrong_dimension_inside_the_file(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\nmovie 0.4 0.5\ngreat 0.1 0.1 0.1\n")
    with pytest.raises(UserError, match=r"glove\.txt:2: 2 values, but the file's vectors have 3"):
        load_glove(str(path), VOCAB, log=quiet)


def test_bad_number(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\nmovie 0.4 x 0.5\n")
    with pytest.raises(UserError, match=r"glove\.txt:2: a value is not a number"):
        load_glove(str(path), VOCAB, log=quiet)


def test_missing_and_empty_files(tmp_path):
    t = time.perf_counter()
    with pytest.raises(UserError, match="--glove_path=.*no such file"):
        load_glove(str(tmp_path / "nope.txt"), VOCAB, log=quiet)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="no vectors"):
        load_glove(str(tmp_path / "empty.txt"), VOCAB, log=quiet)
    assert time.perf_counter() - t < 1


def test_zip_with_several_members(tmp_path):
    path = str(tmp_path / "glove.6B.zip")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("glove.6B.50d.txt", "the 1 2\n")
        z.writestr("glove.6B.100d.txt", "the 1 2 3\n")
    with pytest.raises(UserError, match="several GloVe files"):
        load_glove(path, VOCAB, log=quiet)
    m, info = load_glove(path + ":glove.6B.100d.txt", VOCAB, log=quiet)
    assert info["dim"] == 3 and m[2].tolist() == [1, 2, 3]


def test_truncated_compressed_file(tmp_path):
    data = lzma.compress(("\n".join(f"w{i} 0.1 0.2 0.3" for i in range(5000)) + "\n").encode())
    path = tmp_path / "glove.txt.xz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_glove(str(path), VOCAB, log=quiet)


def test_word2vec_header_is_accepted(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("2 3\nthe 0.1 0.2 0.3\nmovie 1 1 1\n")
    m, info = load_glove(str(path), VOCAB, log=quiet)
    assert info["dim"] == 3 and m[4].tolist() == [1, 1, 1]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e39"])
def test_non_finite_value_names_its_line(tmp_path, value):
    path = tmp_path / "glove.txt"
    path.write_text(f"the 0.1 0.2 0.3\nmovie 0.4 0.5 0.6\ngreat 0.1 {value} 0.2\n")
    with pytest.raises(UserError, match=r"glove\.txt:3: .*not a finite number") as e:
        load_glove(str(path), VOCAB, log=quiet)
    assert value in str(e.value) and "\n" not in str(e.value)
    xz = tmp_path / "glove.txt.xz"  # compressed files too
    xz.write_bytes(lzma.compress(path.read_bytes()))
    with pytest.raises(UserError, match=r"glove\.txt\.xz:3: "):
        load_glove(str(xz), VOCAB, log=quiet)


def test_non_finite_value_of_a_word_not_looked_up_is_harmless(tmp_path):
    """Only the lines of vocabulary words are parsed (documented): a nan elsewhere cannot reach the matrix."""
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\nunusedword nan 0.5 0.6\ngreat 0.1 0.1 0.2\n")
    m, info = load_glove(str(path), VOCAB, log=quiet)
    assert np.isfinite(m).all() and info["found"] == 3
