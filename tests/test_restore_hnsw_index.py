"""A bulk load killed between dropping the HNSW index and building it again leaves the
table without one; the next load, or `pgallery index build`, puts it back."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery.database import connect
from pgallery.loading.embeddings_file import load_embeddings_file
from pgallery.loading.after_load import HNSW_INDEXES, defer_hnsw_indexes
from pg_roles import login_member

runner = CliRunner()


def hnsw_indexes(url) -> int:
    with psycopg.connect(url) as conn:
        return len(conn.execute(HNSW_INDEXES).fetchall())


def killed_bulk_load(url) -> None:
    """What a bulk load killed mid-way leaves: its batches, and no HNSW index."""
    with connect(url, autocommit=True) as conn:
        assert defer_hnsw_indexes(conn, 10_000)    # a bulk load's first step
    assert hnsw_indexes(url) == 0


def embeddings_file(path, n=5):
    rng = np.random.default_rng(4)
    path.write_text("image_file\tvector\n" + "".join(
        f"k{i}.jpg\t[{', '.join(f'{x:.4f}' for x in rng.standard_normal(16))}]\n"
        for i in range(n)))
    return path


def test_the_next_load_puts_the_index_back_and_says_so(make_database, tmp_path):
    url = make_database()
    killed_bulk_load(url)
    with connect(url) as conn:
        summary = load_embeddings_file(conn, embeddings_file(tmp_path / "e.tsv"),
                                       model="test/restore")
    assert summary.notes == ["painting_embedding had no HNSW index (an interrupted bulk "
                             "load?): rebuilt it"]
    assert hnsw_indexes(url) == 1
    with psycopg.connect(url) as conn:   # the shape nearest_paintings orders by
        definition = conn.execute("SELECT pg_get_indexdef('painting_embedding_hnsw'::regclass)"
                                  ).fetchone()[0]
    assert "(l2_normalize(embedding))::halfvec(1024)) halfvec_cosine_ops" in definition
    assert "m='16', ef_construction='64'" in definition


def test_with_the_index_in_place_nothing_is_built(make_database, tmp_path):
    url = make_database()
    with connect(url) as conn:
        summary = load_embeddings_file(conn, embeddings_file(tmp_path / "e.tsv"),
                                       model="test/restore")
    assert summary.notes == [] and hnsw_indexes(url) == 1
    with psycopg.connect(url, autocommit=True) as conn:   # from psql: a no-op
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("CALL restore_hnsw_index()")
    assert notices == [] and hnsw_indexes(url) == 1


def test_index_build_puts_it_back(make_database, monkeypatch, tmp_path):
    url = make_database()
    killed_bulk_load(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["index", "build"])
    assert result.exit_code == 0, result.output
    assert "had no HNSW index" in result.output
    assert hnsw_indexes(url) == 1


def test_the_writer_may_put_it_back_and_the_reader_may_not(make_database):
    url = make_database()
    killed_bulk_load(url)
    with login_member(url, "pgallery_reader") as reader:
        with psycopg.connect(reader, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CALL restore_hnsw_index()")
    with login_member(url, "pgallery_writer") as writer:
        with psycopg.connect(writer, autocommit=True) as conn:
            conn.execute("CALL restore_hnsw_index()")      # as the owner (SECURITY DEFINER)
    assert hnsw_indexes(url) == 1
