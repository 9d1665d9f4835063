"""The recall tuner (pgallery.tuning) against the real embedded PostgreSQL: small
collections whose difficulty is known, searched through the real HNSW / IVFFlat index."""

from __future__ import annotations

import numpy as np
import pytest

from pgallery.database import connect
from pgallery.loading.after_load import BULK_LOAD_ROWS, defer_hnsw_indexes, restore_indexes
from pgallery.loading.records import PaintingRecord
from pgallery.loading.writer import register_model, write_batch
from pgallery.tuning import HNSW_VALUES, exact_neighbours, recall_tail, tune_recall

MODEL = "test/tuning"
N = 3000


def easy_vectors(n: int, seed: int = 0) -> np.ndarray:
    """Low intrinsic dimension (a 6-d subspace, tiny noise): HNSW is exact almost at once."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((1024, 6)))[0].T
    v = rng.standard_normal((n, 6)) @ basis + rng.standard_normal((n, 1024)) * 0.002
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def hard_vectors(n: int, seed: int = 0) -> np.ndarray:
    """Isotropic in 1024-d: every neighbour is barely nearer than any other vector, so the
    graph walk needs a long candidate list to find the true ten."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, 1024))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def load(url: str, vectors: np.ndarray, prefix: str) -> None:
    records = [PaintingRecord(image_file=f"{prefix}-{i:05d}.jpg", title=f"T {i}", author="A",
                              technique=None, date="1500", painting_type="portrait",
                              school="Dutch", timeframe="1451-1500", description=None,
                              embedding=v) for i, v in enumerate(vectors)]
    with connect(url) as conn:
        # the HNSW index is built once after the rows, as a bulk load does: the same index,
        # made several times faster than by inserting every row into the graph
        indexes = defer_hnsw_indexes(conn, BULK_LOAD_ROWS)
        register_model(conn, MODEL, 1024, "test")
        for start in range(0, len(records), 1000):
            write_batch(conn, MODEL, records[start:start + 1000], first_ordinal=start)
        conn.commit()
        restore_indexes(conn, indexes)
    with connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE painting")
        conn.execute("ANALYZE painting_embedding")


@pytest.fixture(scope="module")
def easy_db(make_database):
    url = make_database()
    load(url, easy_vectors(N), "easy")
    return url


@pytest.fixture(scope="module")
def hard_db(make_database):
    url = make_database()
    load(url, hard_vectors(N), "hard")
    return url


@pytest.fixture(scope="module")
def tuned(easy_db, hard_db):
    out = {}
    for name, url in (("easy", easy_db), ("hard", hard_db)):
        with connect(url) as conn:
            out[name] = tune_recall(conn, sample=60, full_sweep=True,
                                    values=(10, 20, 40, 100, 200, 400))
    return out


def test_hard_data_gets_a_larger_ef_search_than_easy_data(tuned):
    easy, hard = tuned["easy"], tuned["hard"]
    assert easy.index == hard.index == "hnsw"
    assert easy.setting == "hnsw.ef_search"
    assert easy.met and easy.chosen is not None
    assert hard.chosen is None or hard.chosen > easy.chosen
    # the easy choice really is too small for the hard collection, by the rule's own terms
    assert not hard.at(easy.chosen).meets
    assert hard.at(easy.chosen).mean < easy.at(easy.chosen).mean


def test_the_choice_is_the_smallest_value_meeting_mean_and_tail(tuned):
    for result in tuned.values():
        assert result.sample_size == 60 and result.rows == N and result.k == 10
        assert [m.value for m in result.table] == [10, 20, 40, 100, 200, 400]
        for m in result.table:
            assert m.meets == (m.mean >= result.target_mean
                               and m.share_at_tail >= result.tail_share)
            assert 0 <= m.p5 <= 1 and 0 <= m.mean <= 1 and 0 <= m.share_below_half <= 1
        meeting = [m.value for m in result.table if m.meets]
        assert result.kinds["stored"].chosen == (meeting[0] if meeting else None)
        # the choice serves every kind measured at once: stored paintings by the rule
        # above, new vectors by what they are served (test_query_kinds.py)
        assert set(result.kinds) == {"stored", "vector"}
        serving = [v for i, v in enumerate(m.value for m in result.table)
                   if all(kind.table[i].meets for kind in result.kinds.values())]
        if serving:
            assert result.chosen == serving[0]
        if result.chosen is not None:
            chosen = result.at(result.chosen)
            assert (result.mean, result.p5, result.share_below_half) == (
                chosen.mean, chosen.p5, chosen.share_below_half)
        assert result.seconds >= result.exact_seconds + result.sweep_seconds > 0


def test_recall_on_the_hard_collection_grows_with_ef_search(tuned):
    means = [m.mean for m in tuned["hard"].table]
    assert means[-1] > means[0] + 0.1
    assert means[-1] >= max(means) - 0.02


def test_a_stricter_tail_asks_for_at_least_as_much(easy_db, tuned):
    with connect(easy_db) as conn:
        strict = tune_recall(conn, sample=60, tail_recall=1.0, tail_share=1.0,
                             values=(10, 20, 40, 100, 200, 400))
    loose = tuned["easy"]
    assert strict.chosen is None or strict.chosen >= loose.chosen
    if strict.chosen is not None:
        assert strict.at(strict.chosen).p5 == 1.0


def test_exact_answers_match_the_exact_sql_path_and_leave_the_query_out(hard_db):
    with connect(hard_db) as conn:
        rows = conn.execute("SELECT p.painting_id, p.image_file FROM painting p"
                            " ORDER BY p.painting_id LIMIT 5 OFFSET 100").fetchall()
        truth = exact_neighbours(conn, MODEL, np.array([r[0] for r in rows]), 10,
                                 block_rows=700)          # several blocks
        for pid, image_file in rows:
            sql_exact = [r[0] for r in conn.execute(
                "SELECT painting_id FROM search_by_image(%s, k => 10, exact => true)",
                (image_file,))]
            assert truth[pid] == sql_exact
            assert pid not in truth[pid]


def numpy_neighbours(conn, query_ids, k=10):
    """The exact answer from every stored vector, in float64 (ties by painting_id)."""
    rows = conn.execute("SELECT painting_id, embedding::real[] FROM painting_embedding"
                        " WHERE model = %s ORDER BY painting_id", (MODEL,)).fetchall()
    ids = np.array([r[0] for r in rows])
    v = np.array([r[1] for r in rows], dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    out = {}
    for q in query_ids:
        d = 1.0 - v @ v[ids == q][0]
        d[ids == q] = np.inf
        out[int(q)] = [int(i) for i in ids[np.lexsort((ids, d))[:k]]]
    return out


@pytest.fixture(scope="module")
def crowd_db(make_database):
    """60 near-copies of one picture among 1,500 others: their distances to each other
    (~0.009, 1e-5 apart) are resolved in single precision, but lie well within the compact
    copy's margin (0.002) of each other: a crowd at each of their queries' boundary."""
    rng = np.random.default_rng(5)
    base = hard_vectors(1, seed=9)[0]
    crowd = base + rng.standard_normal((60, 1024)).astype(np.float32) * 3e-3
    vectors = np.concatenate([hard_vectors(1500, seed=4), crowd / np.linalg.norm(
        crowd, axis=1, keepdims=True)]).astype(np.float32)
    url = make_database()
    load(url, vectors, "crowd")
    return url


def test_exact_answers_stay_exact_in_a_crowd_below_half_precision(crowd_db, monkeypatch):
    import pgallery.tuning as tuning

    passes = []
    stream = tuning._stream_vectors
    monkeypatch.setattr(tuning, "_stream_vectors", lambda *a, **kw: (
        passes.append(kw.get("compact", False) or kw.get("ids") is not None), stream(*a, **kw))[1])
    with connect(crowd_db) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT painting_id FROM painting ORDER BY painting_id DESC LIMIT 3")]   # crowd
        ids += [r[0] for r in conn.execute(
            "SELECT painting_id FROM painting ORDER BY painting_id LIMIT 3")]        # others
        got = exact_neighbours(conn, MODEL, np.array(ids), 10)
        assert got == numpy_neighbours(conn, ids)
    # the compact pass, the re-rank, and one pass over the full vectors for the crowd
    assert passes.count(False) == 1 and passes[1] is True


def test_exact_answers_do_not_trust_an_incomplete_compact_copy(make_database):
    url = make_database()
    load(url, hard_vectors(800, seed=6), "gap")
    with connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT painting_id FROM painting ORDER BY painting_id LIMIT 4")]
        want = numpy_neighbours(conn, ids)
        # the copy loses the true nearest neighbour of every query
        conn.execute("DELETE FROM painting_embedding_half WHERE painting_id = ANY(%s)",
                     ([w[0] for w in want.values()],))
        assert exact_neighbours(conn, MODEL, np.array(ids), 10) == want


def test_the_tuner_leaves_settings_and_data_as_they_were(hard_db):
    with connect(hard_db) as conn:
        before = conn.execute("SHOW hnsw.ef_search").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
        result = tune_recall(conn, sample=20, values=(10, 40))
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == before
        assert conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0] == count
        assert result.current == int(before)


def test_a_time_budget_stops_the_sweep(hard_db):
    with connect(hard_db) as conn:
        result = tune_recall(conn, sample=20, budget_seconds=0.0)
    assert len(result.table) == 1 and result.stopped_by_budget
    assert not result.met and result.chosen is None
    assert result.table[0].value == HNSW_VALUES[0]


def test_ivfflat_sweeps_probes(make_database):
    url = make_database()
    load(url, hard_vectors(1500, seed=3), "ivf")
    with connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX painting_embedding_hnsw")
        conn.execute("CALL build_ivfflat_index(40)")             # 40 lists of ~40 vectors
        result = tune_recall(conn, sample=30, values=(1, 2, 5, 40), full_sweep=True)
    assert result.index == "ivfflat" and result.setting == "ivfflat.probes"
    assert [m.value for m in result.table] == [1, 2, 5, 40]
    assert result.table[-1].mean > result.table[0].mean
    assert result.met and result.chosen is not None


def test_nothing_to_tune_without_vectors(make_database):
    with connect(make_database()) as conn:
        result = tune_recall(conn)
    assert result.index == "none" and not result.met and result.chosen is None


def test_recall_tail_counts_the_lost_queries():
    stats = recall_tail([1.0] * 18 + [0.0, 0.3], tail_recall=0.8)
    assert stats["zero"] == 1 and stats["share_below_half"] == 0.1
    assert stats["share_at_tail"] == 0.9 and abs(stats["mean"] - 0.915) < 1e-9


def test_the_sample_kth_distances_are_reported_for_a_guard(tuned):
    for result in tuned.values():
        d = result.kth_distance
        assert 0 <= d["median"] <= d["q95"] <= d["q99"] <= d["max"] <= 2
    # isotropic vectors are far from every neighbour; the 6-d subspace is dense
    assert tuned["hard"].kth_distance["median"] > 5 * tuned["easy"].kth_distance["median"]
