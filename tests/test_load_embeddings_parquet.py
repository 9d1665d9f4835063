"""`pgallery load --embeddings FILE.parquet`: vectors stored as numbers load exactly, bad rows
are reported with the reasons the tab-separated path gives, and a file that is not what it
should be is a one-line error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery.database import connect
from pgallery.errors import ArgError
from pgallery.loading import after_load
from pgallery.loading.embeddings_file import load_embeddings_file

runner = CliRunner()


def write_parquet(path, image_files, vectors, vector_type=None, **metadata):
    """A Parquet file with image_file, vector (a list per row, None for a null) and any
    metadata columns given as lists."""
    columns = {"image_file": pa.array(image_files, pa.string())}
    for name, values in metadata.items():
        columns[name] = pa.array(values)
    vector_type = vector_type or pa.list_(pa.float32())
    columns["vector"] = pa.array([None if v is None else [None if x is None else float(x) for x in v]
                                  for v in vectors],
                                 vector_type)
    pq.write_table(pa.table(columns), path)
    return path


def stored(url, model):
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT p.image_file, e.embedding, p.title, p.author, p.date FROM painting p"
            " JOIN painting_embedding e USING (painting_id) WHERE e.model = %s", (model,))
        return {f: (np.asarray(v.to_numpy(), np.float32), title, author, date)
                for f, v, title, author, date in rows.fetchall()}


def load(url, path, model, batch_size=2000):
    with connect(url) as conn:
        return load_embeddings_file(conn, path, model=model, batch_size=batch_size)


def test_good_rows_load_bit_for_bit_and_bad_rows_are_reported_with_reasons(
        make_database, tmp_path):
    url = make_database()
    rng = np.random.default_rng(7)
    good = rng.standard_normal((6, 16)).astype(np.float32)
    nan, inf, zeros = good[0].copy(), good[0].copy(), np.zeros(16)
    nan[3], inf[5] = np.nan, -np.inf
    with_null = [*good[1][:15], None]
    names = ["g0.jpg", "g1.jpg", "g2.jpg", "nan.jpg", "inf.jpg", "zeros.jpg", "short.jpg",
             "null.jpg", "empty.jpg", "null-element.jpg", "-", "g3.jpg", "g0.jpg"]
    vectors = [good[0], good[1], good[2], nan, inf, zeros, good[3][:4], None, [], with_null,
               good[4], good[3], good[5]]
    path = write_parquet(tmp_path / "e.parquet", names, vectors,
                         title=[f"Title {i}" for i in range(len(names))],
                         author=["  REMBRANDT  "] * len(names),
                         date=list(range(1600, 1600 + len(names))))   # integers, not text
    summary = load(url, path, "test/parquet", batch_size=4)

    assert [(r.where, r.image_file, r.reason) for r in summary.rejected] == [
        ("row 4", "nan.jpg", "vector holds NaN or infinity"),
        ("row 5", "inf.jpg", "vector holds NaN or infinity"),
        ("row 6", "zeros.jpg", "vector is all zeros"),
        ("row 7", "short.jpg", "vector has 4 dimensions, expected 16"),
        ("row 8", "null.jpg", "no vector"),
        ("row 9", "empty.jpg", "bad vector: empty vector"),
        ("row 10", "null-element.jpg", "vector holds NaN or infinity"),
        ("row 11", None, "no image_file"),
    ]
    loaded = stored(url, "test/parquet")
    assert sorted(loaded) == ["g0.jpg", "g1.jpg", "g2.jpg", "g3.jpg"]
    # the last g0.jpg won; vectors are zero-padded to the column, bit for bit
    for name, vector, title, date in (("g0.jpg", good[5], "Title 12", "1612"),
                                      ("g1.jpg", good[1], "Title 1", "1601"),
                                      ("g3.jpg", good[3], "Title 11", "1611")):
        got, got_title, author, got_date = loaded[name]
        assert np.array_equal(got[:16], vector) and not got[16:].any()
        assert (got_title, author, got_date) == (title, "REMBRANDT", date)
    assert summary.seen == len(names)


@pytest.mark.parametrize("vector_type", [
    pa.list_(pa.float64()), pa.list_(pa.float32(), 1024), pa.large_list(pa.float16()),
], ids=["float64-list", "fixed-size-float32", "large-list-float16"])
def test_any_list_of_floats_loads_as_float32(make_database, tmp_path, vector_type):
    url = make_database()
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((30, 1024))
    path = write_parquet(tmp_path / "v.parquet", [f"v{i}.jpg" for i in range(30)], vectors,
                         vector_type)
    summary = load(url, path, "test/parquet-types", batch_size=8)
    assert not summary.rejected and summary.merged.embeddings == 30
    loaded = stored(url, "test/parquet-types")
    as_stored = pa.array(list(vectors), vector_type).cast(
        pa.list_(pa.float64())).to_pylist()        # the file's own precision
    for i in range(30):
        assert np.array_equal(loaded[f"v{i}.jpg"][0], np.float32(as_stored[i]))


def test_a_float64_beyond_float32_is_rejected_as_infinity(make_database, tmp_path):
    url = make_database()
    path = write_parquet(tmp_path / "big.parquet", ["big.jpg", "ok.jpg"],
                         [[1e39, 1.0], [0.5, 1.0]], pa.list_(pa.float64()))
    summary = load(url, path, "test/parquet-big")
    assert [(r.image_file, r.reason) for r in summary.rejected] == [
        ("big.jpg", "vector holds NaN or infinity")]
    assert list(stored(url, "test/parquet-big")) == ["ok.jpg"]


def test_the_format_is_told_by_the_content_not_the_name(make_database, tmp_path):
    url = make_database()
    path = write_parquet(tmp_path / "looks-like.tsv", ["a.jpg"], [[1.0, 2.0]])
    assert load(url, path, "test/parquet-name").merged.embeddings == 1


def test_a_bulk_parquet_load_rebuilds_the_hnsw_index_it_deferred(make_database, tmp_path,
                                                                 monkeypatch):
    url = make_database()
    rng = np.random.default_rng(11)
    # above the bulk threshold (lowered here, so that the build takes a second): the index
    # is dropped during the load and rebuilt after
    monkeypatch.setattr(after_load, "BULK_LOAD_ROWS", 500)
    n = 600
    path = write_parquet(tmp_path / "bulk.parquet", [f"b{i}.jpg" for i in range(n)],
                         rng.standard_normal((n, 1024)), pa.list_(pa.float32(), 1024))
    index_oid = "SELECT to_regclass('painting_embedding_hnsw')::oid"
    with connect(url) as conn:
        before = conn.execute(index_oid).fetchone()[0]
    summary = load(url, path, "test/parquet-bulk")
    assert summary.merged.embeddings == n and not summary.rejected
    with connect(url) as conn:
        after = conn.execute(index_oid).fetchone()[0]
        assert before is not None and after is not None
        assert after != before          # dropped before the rows went in, built anew after
        assert conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0] == n


def test_a_vector_column_of_text_is_refused_with_advice(make_database, tmp_path):
    url = make_database()
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"image_file": ["a.jpg"], "vector": ["[1, 2]"]}), path)
    with pytest.raises(ArgError, match="must hold a list of numbers per row, not string"):
        load(url, path, "test/parquet-text")


def test_the_cli_loads_parquet_and_refuses_a_broken_file_in_one_line(cli_env, tmp_path):
    rng = np.random.default_rng(5)
    path = write_parquet(tmp_path / "cli.parquet", ["c1.jpg", "c2.jpg", "bad.jpg"],
                         [*rng.standard_normal((2, 1024)), None])
    result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/cli-pq"])
    assert result.exit_code == 0, result.output
    assert "bad.jpg" in result.output and "no vector" in result.output

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\0" * 100)
    result = runner.invoke(app, ["load", "--embeddings", str(broken), "--model", "test/cli-pq"])
    assert result.exit_code != 0
    assert "not a readable Parquet file" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit

    missing = tmp_path / "columns.parquet"
    pq.write_table(pa.table({"file": ["a.jpg"], "vector": [[1.0]]}), missing)
    result = runner.invoke(app, ["load", "--embeddings", str(missing), "--model", "test/cli-pq"])
    assert result.exit_code != 0 and "missing column(s) image_file" in result.output


def test_vectors_longer_than_the_column_are_refused_in_one_line(cli_env, tmp_path):
    path = write_parquet(tmp_path / "wide.parquet", ["w.jpg"],
                         np.ones((1, 2048), np.float32))
    result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/wide"])
    assert result.exit_code != 0
    assert "2048" in result.output and "1024" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


def test_a_tsv_of_vectors_longer_than_the_column_is_refused_the_same_way(cli_env, tmp_path):
    path = tmp_path / "wide.tsv"
    path.write_text("image_file\tvector\nw.jpg\t[" + ", ".join(["0.5"] * 1025) + "]\n")
    result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/wide"])
    assert result.exit_code == 2
    assert "its vectors have 1025 dimensions; pgallery's column holds at most 1024" \
        in result.output


def test_a_damaged_page_stops_the_load_in_one_line_keeping_the_batches_before_it(
        cli_env, tmp_path):
    vectors = np.random.default_rng(8).standard_normal((300, 1024)).astype(np.float32)
    path = tmp_path / "damaged.parquet"
    pq.write_table(pa.table({
        "image_file": [f"d{i}.jpg" for i in range(300)],
        "vector": pa.FixedSizeListArray.from_arrays(vectors.ravel(), 1024)}),
        path, row_group_size=100)
    data = bytearray(path.read_bytes())
    offset = pq.ParquetFile(path).metadata.row_group(2).column(1).data_page_offset
    data[offset:offset + 40] = b"\x07" * 40          # the third row group's page header
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["load", "--embeddings", str(path), "--model", "test/damaged",
                                 "--batch-size", "100"])
    assert result.exit_code == 2, result.output
    assert "unreadable after row 200" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert len(stored(cli_env, "test/damaged")) == 200
