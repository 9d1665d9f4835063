"""An HNSW build after a bulk load gets room for its whole graph when the server runs on
this machine; elsewhere pgvector's notice that the graph did not fit becomes advice."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pgallery.database import connect
from pgallery.loading import after_load, build_memory
from pgallery import tuning
from pgallery.loading.build_memory import choose, graph_bytes, human
from pgallery.loading.embeddings_file import load_embeddings_file

GB, MB = 1 << 30, 1 << 20


@pytest.mark.parametrize("vectors,current,local,limit,expected", [
    (100_000, 1 * GB, True, 6 * GB, None),            # 300 MB: the 1GB default holds it
    (1_000_000, 1 * GB, True, 6 * GB, graph_bytes(1_000_000)),  # raised to the graph's size
    (3_000_000, 1 * GB, True, 6 * GB, 6 * GB),         # ... but not past the machine's limit
    (1_000_000, 1 * GB, False, 6 * GB, None),         # a remote server: the DBA's setting
    (1_000_000, 1 * GB, True, None, None),            # memory unknown: left alone
    (1_000_000, 8 * GB, True, 6 * GB, None),          # never lowered
])
def test_the_build_gets_the_graphs_size_within_what_is_safe(vectors, current, local, limit,
                                                            expected):
    assert choose(vectors, current, local, limit) == expected


def test_memory_reads_in_postgresqls_units():
    assert [human(n) for n in (3_000_000_000, 450 * MB, 18_000_000, 512 * 1024)] == \
        ["3GB", "450MB", "18MB", "512kB"]


def test_the_embedded_server_counts_as_local(conn):
    assert build_memory.server_is_local(conn)


# A bulk load of 1,000 vectors: the threshold is lowered for these tests so that the build
# they watch takes seconds, not the half minute a load past the real threshold takes; a
# graph of 1,000 (about 5MB) still does not fit the 1MB the session starts with. The
# recall sweep that follows a load is test_tuning.py's subject, not these tests'.
BULK_ROWS = 1000


@pytest.fixture
def small_bulk_threshold(monkeypatch):
    monkeypatch.setattr(after_load, "BULK_LOAD_ROWS", BULK_ROWS // 2)
    monkeypatch.setattr(tuning, "needs_tuning", lambda conn, model=None: False)


def bulk_file(path, n=BULK_ROWS):
    vectors = np.random.default_rng(2).standard_normal((n, 1024)).astype(np.float32)
    pq.write_table(pa.table({
        "image_file": [f"m{i}.jpg" for i in range(n)],
        "vector": pa.FixedSizeListArray.from_arrays(vectors.ravel(), 1024)}), path)
    return path


def load_with_little_memory(url, path):
    with connect(url) as conn:
        conn.execute("SET maintenance_work_mem = '1MB'")   # a graph of 1,000 needs ~5 MB
        conn.commit()
        summary = load_embeddings_file(conn, path, model="test/build-memory")
        setting = conn.execute("SHOW maintenance_work_mem").fetchone()[0]
    return summary, setting


def test_a_local_build_is_given_room_for_its_graph_and_the_setting_restored(
        make_database, tmp_path, small_bulk_threshold):
    url = make_database()
    summary, setting = load_with_little_memory(url, bulk_file(tmp_path / "b.parquet"))
    assert summary.merged.embeddings == BULK_ROWS
    assert summary.notes == ["the HNSW index was built with maintenance_work_mem 5MB "
                             "(its graph of 1,000 vectors needs about 5MB)"]
    assert setting == "1MB"          # the session's own value afterwards


def test_a_remote_build_that_spills_to_disk_says_how_to_avoid_it(make_database, tmp_path,
                                                                 monkeypatch,
                                                                 small_bulk_threshold):
    url = make_database()
    monkeypatch.setattr(build_memory, "server_is_local", lambda conn: False)
    summary, _ = load_with_little_memory(url, bulk_file(tmp_path / "r.parquet"))
    assert summary.merged.embeddings == BULK_ROWS
    [note] = summary.notes
    assert note.startswith("the HNSW graph did not fit maintenance_work_mem (1MB): pgvector "
                           "built it on disk")
    assert "PGOPTIONS='-c maintenance_work_mem=5MB'" in note
    with connect(url) as conn:   # the index is there all the same
        assert conn.execute("SELECT to_regclass('painting_embedding_hnsw') IS NOT NULL"
                            ).fetchone()[0]
