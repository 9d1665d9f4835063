"""`pgallery load --embeddings`: the server parses the vectors (text COPY) when cheap checks
allow it, and the result is exactly what the Python path gives: the same rows loaded with
the same float32 values, the same rows rejected with the same reasons, in the same order.

The reference is read_embeddings_file, the exact path (every vector parsed with numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from pgallery.database import connect
from pgallery.loading import embeddings_tsv
from pgallery.loading.embedding_rows import CopyChunk
from pgallery.loading.embeddings_file import load_embeddings_file
from pgallery.loading.embeddings_tsv import fast_vector_literal, read_embeddings_file
from pgallery.providers.base import pad_to_column

HEADER = "image_file\tdescription\tauthor\ttitle\ttechnique\ttype\ttimeframe\tvector\n"


def literal(values) -> str:
    return "[" + ", ".join(repr(float(x)) for x in np.asarray(values, np.float32)) + "]"


def write_file(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for image_file, title, vector in rows:
            fh.write(f"{image_file}\tdesc\tAUTHOR\t{title}\tOil\tportrait\t1601-1650\t{vector}\n")
    return path


def mixed_rows(dim: int, rng) -> list[tuple[str, str, str]]:
    """Good rows in many spellings, and every kind of bad one, interleaved."""
    good = [literal(rng.standard_normal(dim)) for _ in range(12)]
    spelled = ["[" + ", ".join([".5", "5.", "+1e-3", "1E2", " -0.25 ", "7", "0", "-0e5"]
                               + ["0.125"] * (dim - 8)) + "]",
               "[" + ",".join(["1e-50"] * (dim - 1) + ["1.5e-3"]) + "]",   # only one nonzero
               "  " + good[0] + "  "]
    bad = {
        "dots": "[" + ", ".join(["1.2.3"] + ["0.5"] * (dim - 1)) + "]",
        "empty-element": "[" + ",".join(["1", ""] + ["0.5"] * (dim - 2)) + "]",
        "nan": "[" + ", ".join(["NaN"] + ["0.5"] * (dim - 1)) + "]",
        "inf": "[" + ", ".join(["-Inf"] + ["0.5"] * (dim - 1)) + "]",
        "overflow": "[" + ", ".join(["1e39"] + ["0.5"] * (dim - 1)) + "]",
        "short": "[1, 2, 3]",
        "long": literal(rng.standard_normal(dim + 1)),
        "zeros": "[" + ", ".join(["0", "0.0", "-0", "0e5"] + ["0"] * (dim - 4)) + "]",
        "underflow-zeros": "[" + ",".join(["1e-50"] * dim) + "]",
        "long-zeros": "[" + ",".join(["0." + "0" * 50 + "1"] * dim) + "]",
        "hex": "[" + ", ".join(["0x1p3"] + ["0.5"] * (dim - 1)) + "]",
        "empty": "[]",
        "not-a-list": "0.5, 0.5",
        "space-inside": "[" + ", ".join(["1 2"] + ["0.5"] * (dim - 1)) + "]",
    }
    rows = []
    for i, vector in enumerate(good + spelled):
        rows.append((f"good-{i}.jpg", f"Title {i} with a \\ backslash and \\N", vector))
        name, text = list(bad.items())[i % len(bad)]
        rows.append((f"bad-{i}-{name}.jpg", "-", text))
    rows += [(f"bad-{name}.jpg", "", text) for name, text in bad.items()]
    rows.append(("", "no image_file", good[1]))
    rows.append(("good-0.jpg", "the last duplicate wins", good[2]))
    for name, big in (("max", "3.40282356e38"), ("over-max", "3.4028236e38")):
        rows.append((f"{name}.jpg", "near float32's maximum",       # rounds down / to inf
                     "[" + ", ".join([big] + ["0.5"] * (dim - 1)) + "]"))
    return rows


def expected(path, dim):
    """What the exact path does: {image_file: (vector padded, title)}, and its rejections."""
    good, rejected = {}, []
    for chunk in read_embeddings_file(path, dimension=dim):
        rejected += chunk.rejected
        for r in chunk.records:
            good[r.image_file] = (pad_to_column(r.embedding), r.title)
    return good, rejected


def stored(url, model):
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT p.image_file, e.embedding, p.title FROM painting p"
            " JOIN painting_embedding e USING (painting_id) WHERE e.model = %s", (model,))
        return {f: (np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, np.float32), t)
                for f, v, t in rows.fetchall()}


def load(url, path, model, batch_size):
    with connect(url) as conn:
        return load_embeddings_file(conn, path, model=model, batch_size=batch_size)


def assert_same(url, path, model, dim, summary):
    good, rejected = expected(path, dim)
    assert [(r.where, r.image_file, r.reason) for r in summary.rejected] == \
        [(r.where, r.image_file, r.reason) for r in rejected]
    loaded = stored(url, model)
    assert sorted(loaded) == sorted(good)
    for image_file, (vector, title) in good.items():
        assert np.array_equal(loaded[image_file][0], vector), image_file
        assert loaded[image_file][1] == title, image_file


@pytest.mark.parametrize("client_parses", [False, True], ids=["server-parses", "both-parse"])
@pytest.mark.parametrize("dim", [8, 1024])
def test_a_mixed_file_loads_every_good_row_and_reports_the_same_reasons(
        make_database, tmp_path, monkeypatch, dim, client_parses):
    url = make_database()
    path = write_file(tmp_path / "mixed.tsv", mixed_rows(dim, np.random.default_rng(dim)))
    rechecked = []
    recheck = CopyChunk.recheck
    monkeypatch.setattr(CopyChunk, "recheck",
                        lambda self: rechecked.append(1) or recheck(self))
    if not client_parses:   # every vector that passes the checks goes to the server
        monkeypatch.setattr(CopyChunk, "parse_one", lambda self: None)
    summary = load(url, path, "test/fast-mixed", batch_size=5)
    assert_same(url, path, "test/fast-mixed", dim, summary)
    reasons = {r.reason for r in summary.rejected}
    assert "bad vector: holds something that is not a number" in reasons
    assert "vector holds NaN or infinity" in reasons and "vector is all zeros" in reasons
    assert f"vector has 3 dimensions, expected {dim}" in reasons
    if not client_parses:
        assert rechecked   # the server refused a batch ('1.2.3'): redone on the exact path
    # a second run, batched differently, ends the same and reports the same
    again = load(url, path, "test/fast-mixed", batch_size=7)
    assert_same(url, path, "test/fast-mixed", dim, again)


def test_a_512_dimension_file_is_zero_padded_exactly(make_database, tmp_path, monkeypatch):
    url = make_database()
    rng = np.random.default_rng(512)
    vectors = (rng.standard_normal((40, 512)) * 10.0 ** rng.integers(-6, 3, (40, 1))
               ).astype(np.float32)
    path = write_file(tmp_path / "d512.tsv",
                      [(f"pad-{i}.jpg", "t", literal(v)) for i, v in enumerate(vectors)])
    monkeypatch.setattr(CopyChunk, "parse_one", lambda self: None)
    summary = load(url, path, "test/fast-512", batch_size=16)
    assert not summary.rejected and summary.merged.embeddings == 40
    loaded = stored(url, "test/fast-512")
    for i, v in enumerate(vectors):
        got = loaded[f"pad-{i}.jpg"][0]
        assert got.shape == (1024,)
        assert np.array_equal(got[:512], v) and not got[512:].any()
    assert_same(url, path, "test/fast-512", 512, summary)


def test_a_reader_error_reaches_the_caller_and_stops_the_thread(make_database, tmp_path,
                                                                 monkeypatch):
    url = make_database()
    path = write_file(tmp_path / "e.tsv", [(f"e-{i}.jpg", "t", literal(np.ones(4)))
                                           for i in range(30)])
    real = embeddings_tsv.staging_text_line

    def failing(ordinal, record, vector):
        if record.image_file == "e-20.jpg":
            raise RuntimeError("disk on fire")
        return real(ordinal, record, vector)

    monkeypatch.setattr(embeddings_tsv, "staging_text_line", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        load(url, path, "test/fast-error", batch_size=4)
    # the batches before the failing one are committed (one transaction per batch)
    assert len(stored(url, "test/fast-error")) == 20


@pytest.mark.parametrize("text", [
    "[1e-50, 1e-50]",                    # underflows to all zeros in float32
    "[0." + "0" * 45 + "1, 0]",          # so does this
    "[5e-38, 0]",                        # mantissa >= 1 but exponent below -37: not proven
    "[0x1p3, 1]", "[nan, 1]", "[inf, 1]", "[1_0, 1]", "[1\u20032, 1]", "[１, 1]",
    "[1, 2, 3]",                         # dimension 3, not 2
    "[]", "[ ]", "1, 2", None, float("nan"),
])
def test_the_cheap_checks_send_doubtful_vectors_to_the_exact_path(text):
    assert fast_vector_literal(text, 2) is None


@pytest.mark.parametrize("text,padded", [
    ("[0.5, 0]", "[0.5, 0]"), (" [1e-37,0] ", "[1e-37,0]"), ("[0, -0.00000001]", None),
    ("[+.5,5.]", None), ("[0, 1E+5]", None),
])
def test_the_cheap_checks_pass_plain_vectors_padded_to_the_column(text, padded):
    out = fast_vector_literal(text, 2)
    body = padded or text.strip()
    assert out == body[:-1] + ",0" * 1022 + "]"
