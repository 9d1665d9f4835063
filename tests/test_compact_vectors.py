"""The compact copy behind exact search (migration 0013): painting_embedding_half follows
every write to painting_embedding, and exact => true gives the answers of a plain
full-precision scan, also when many vectors crowd the page's boundary."""

from __future__ import annotations

import numpy as np
import pytest

from pgallery.database import connect
from synthetic import load_collection, make_collection, queries_near

MODEL = "test/compact"


@pytest.fixture(scope="module")
def db(make_database):
    url = make_database(prefix="compact")
    collection = make_collection(1500, seed=21, prefix="cp")
    with connect(url) as conn:
        load_collection(conn, collection, MODEL)
    with connect(url, autocommit=True) as conn:
        yield conn, collection


def full_scan(conn, q, k=10, offset=0):
    return [r[0] for r in conn.execute(
        "SELECT p.image_file FROM painting_embedding e JOIN painting p USING (painting_id)"
        " ORDER BY e.embedding <=> %s, e.painting_id LIMIT %s OFFSET %s", (q, k, offset))]


def test_the_copy_follows_inserts_updates_and_deletes(db):
    conn, collection = db
    count = lambda: conn.execute(                                  # noqa: E731
        "SELECT (SELECT count(*) FROM painting_embedding),"
        " (SELECT count(*) FROM painting_embedding_half)").fetchone()
    assert count() == (1500, 1500)
    differs = conn.execute(
        "SELECT count(*) FROM painting_embedding e JOIN painting_embedding_half h"
        " USING (painting_id, model)"
        " WHERE h.embedding <> l2_normalize(e.embedding)::halfvec(1024)").fetchone()[0]
    assert differs == 0
    new = np.zeros(1024, dtype=np.float32)
    new[3] = 2.0
    conn.execute("UPDATE painting_embedding SET embedding = %s WHERE painting_id ="
                 " (SELECT painting_id FROM painting WHERE image_file = 'cp-000007.jpg')",
                 (new,))
    half = conn.execute("SELECT h.embedding::vector FROM painting_embedding_half h JOIN"
                        " painting p USING (painting_id) WHERE p.image_file = 'cp-000007.jpg'"
                        ).fetchone()[0].to_numpy()
    assert half[3] == 1.0 and np.count_nonzero(half) == 1
    conn.execute("DELETE FROM painting WHERE image_file = 'cp-000008.jpg'")
    assert count() == (1499, 1499)


def test_exact_search_equals_a_full_precision_scan_on_every_page(db):
    conn, collection = db
    for q in queries_near(collection, 5, seed=4):
        for page in (1, 3):
            got = [r[0] for r in conn.execute(
                "SELECT image_file FROM search_by_vector(%s, exact => true, page => %s)",
                (q, page))]
            assert got == full_scan(conn, q, offset=(page - 1) * 10)


def test_a_crowd_at_the_boundary_falls_back_to_the_full_vectors(make_database):
    # 200 vectors a hair apart, far closer than half precision can tell: the compact
    # scan cannot prove its candidates complete, and the full vectors decide
    url = make_database(prefix="crowd")
    rng = np.random.default_rng(2)
    base = rng.standard_normal(1024).astype(np.float32)
    crowd = base + 1e-5 * rng.standard_normal((200, 1024)).astype(np.float32)
    collection = make_collection(200, seed=3, prefix="cr")
    for record, v in zip(collection.records, crowd):
        record.embedding = v
    with connect(url) as conn:
        load_collection(conn, collection, MODEL)
    with connect(url, autocommit=True) as conn:
        got = [r[0] for r in conn.execute(
            "SELECT image_file FROM search_by_vector(%s, exact => true)", (base,))]
        assert got == full_scan(conn, base)
