"""The second candidate source of new-vector queries: an IVFFlat index on the compact copy,
probed beside the HNSW graph and re-ranked with its page by exact distance, so that a
query the graph loses (whose page looks like any other) is found by the partition, which
loses different ones. Stored paintings keep the graph alone."""

from __future__ import annotations

import numpy as np
import pytest

from pgallery.database import connect
from test_query_kinds import clusters, exact_top, served
from test_tuning import load

# A graph this poor (m 4, ef_construction 8, searched at ef_search 10, on 3,000 rows
# stored cluster by cluster) loses new vectors as a 100k graph does at its default
# (bench/README.md, section 16), in a few seconds.
STARVED = 10


@pytest.fixture(scope="module")
def hard(make_database):
    stored, new = clusters(seed=23)
    url = make_database(prefix="probe")
    load(url, stored, "probe")
    with connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX painting_embedding_hnsw")
        conn.execute("CREATE INDEX painting_embedding_hnsw ON painting_embedding USING hnsw"
                     " ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)"
                     " WITH (m = 4, ef_construction = 8)")
    rng = np.random.default_rng(6)
    src = rng.choice(len(stored), 100, replace=False)
    noisy = stored[src] + rng.standard_normal((100, 1024)).astype(np.float32) * (0.02 / 32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    queries = np.concatenate([new[:100], noisy]).astype(np.float32)
    return {"url": url, "stored": stored, "queries": queries,
            "truth": exact_top(stored, queries)}


def unguarded(conn):
    """The page the search gives, without the lost-query guard's exact re-runs."""
    for name in ("pgallery.lost_query_distance", "pgallery.lost_query_distance_vector"):
        conn.execute("SELECT set_config(%s, '', false)", (name,))
    return conn


def test_the_probe_finds_the_new_vectors_the_graph_alone_loses(hard):
    with connect(hard["url"], autocommit=True) as conn:
        unguarded(conn)
        assert conn.execute("SELECT vector_probes()").fetchone()[0] is None
        alone = served(conn, hard["queries"], hard["truth"], ef_search=STARVED)
        conn.execute("CALL build_vector_probe_index()")
        lists, probes = conn.execute(
            "SELECT (SELECT o.option_value::integer FROM pg_class c,"
            " pg_options_to_table(c.reloptions) o"
            " WHERE c.relname = 'painting_embedding_half_ivfflat' AND o.option_name = 'lists'),"
            " vector_probes()").fetchone()
        merged = served(conn, hard["queries"], hard["truth"], ef_search=STARVED)
        conn.execute("CALL drop_vector_probe_index()")
    assert lists == round(np.sqrt(len(hard["stored"])))
    assert probes == 3                       # 1.5 % of 55 lists, at least three
    assert (alone < 0.5).sum() >= 3, np.sort(alone)[:5]
    assert (merged < 0.5).sum() == 0, np.sort(merged)[:5]
    assert merged.mean() >= 0.97 and merged.mean() > alone.mean()


def pages(conn, sql: str, queries) -> list[list[str]]:
    return [[r[0] for r in conn.execute(sql, (q,))] for q in queries]


def test_filtered_new_vectors_merge_the_probe_and_stored_paintings_keep_the_graph(hard):
    stored, queries = hard["stored"], hard["queries"][:100]      # the new images
    # every row is a portrait (test_tuning.load): the filter keeps all of them, so the
    # search walks the graph with the filter (the ANN path), not the exact one
    truth = exact_top(stored, queries)
    filtered = (f"SELECT image_file FROM search_by_vector(%s, k => 10, ef_search => {STARVED},"
                " painting_type => 'portrait')")
    more_like = f"SELECT image_file FROM search_by_image(%s, k => 10, ef_search => {STARVED})"
    files = [f"probe-{i:05d}.jpg" for i in range(0, len(stored), 150)]

    def recall(got):
        return np.array([len({int(f[6:11]) for f in g} & t) / 10 for g, t in zip(got, truth)])

    with connect(hard["url"], autocommit=True) as conn:
        unguarded(conn)
        alone, stored_alone = pages(conn, filtered, queries), pages(conn, more_like, files)
        conn.execute("CALL build_vector_probe_index()")
        merged, stored_merged = pages(conn, filtered, queries), pages(conn, more_like, files)
        conn.execute("CALL drop_vector_probe_index()")
    # the filtered walk goes further than the unfiltered one (alone it lost 0-3 in the
    # builds seen, mean about 0.9): none lost and a higher mean with the probe
    assert (recall(merged) < 0.5).sum() == 0, np.sort(recall(merged))[:5]
    assert recall(merged).mean() >= 0.97 > recall(alone).mean()
    assert stored_merged == stored_alone


def test_a_new_vectors_pages_come_from_both_sources_without_repeats(hard):
    q = hard["queries"][0]
    sql = (f"SELECT image_file FROM search_by_vector(%s, k => 10, ef_search => {STARVED},"
           " page => %s)")
    with connect(hard["url"], autocommit=True) as conn:
        unguarded(conn)
        alone = [r[0] for page in (1, 2, 3) for r in conn.execute(sql, (q, page))]
        conn.execute("CALL build_vector_probe_index()")
        got = [r[0] for page in (1, 2, 3) for r in conn.execute(sql, (q, page))]
        conn.execute("CALL drop_vector_probe_index()")
    exact = {f"probe-{i:05d}.jpg" for i in exact_top(hard["stored"], q[None, :], k=30)[0]}
    assert len(got) == len(set(got)) == 30
    assert len(set(got) & exact) >= max(len(set(alone) & exact), 20)


def test_index_tune_builds_it_and_every_report_names_it(hard, monkeypatch):
    from typer.testing import CliRunner

    from pgallery import tuning
    from pgallery.commands import app

    monkeypatch.setenv("DATABASE_URL", hard["url"])
    assert len(hard["stored"]) >= tuning.VECTOR_PROBE_MIN_ROWS
    try:
        tuned = CliRunner().invoke(app, ["index", "tune", "--sample", "60", "--budget", "5"])
        status = CliRunner().invoke(app, ["index", "status"])
        with connect(hard["url"], autocommit=True) as conn:
            kinds = conn.execute("SELECT kinds FROM index_tuning_status()").fetchone()[0]
            # a new session: new vectors run at the kind's own choice, stored paintings
            # at the default
            probed = {kind: conn.execute("SELECT set_config('pgallery.query_kind', %s, false),"
                                         " probed_ef_search()", (kind,)).fetchone()[1]
                      for kind in ("vector", "stored")}
            default = int(conn.execute("SHOW hnsw.ef_search").fetchone()[0])
    finally:
        with connect(hard["url"], autocommit=True) as conn:
            conn.execute("CALL drop_vector_probe_index()")
    assert tuned.exit_code == 0, tuned.output
    assert "built the probe index of new-vector queries" in tuned.output
    assert "IVF 3 of 55 lists" in tuned.output and "IVF 3 of 55 lists" in status.output
    assert kinds["vector"]["probe"] == {"lists": 55, "probes": 3}
    assert kinds["stored"]["probe"] is None
    # with the probe the moved vectors are served at the sweep's first value
    assert kinds["vector"]["chosen"] == 10 and kinds["vector"]["at"] == 10 < default
    assert probed == {"vector": 10, "stored": None}


def test_the_downgrade_below_it_drops_the_index(make_database):
    from pgallery import migrations

    url = make_database(prefix="probedown")
    stored, _ = clusters(seed=3)
    load(url, stored[:500], "down")
    with connect(url, autocommit=True) as conn:
        conn.execute("CALL build_vector_probe_index()")
    migrations.downgrade(url, "0017")
    with connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('painting_embedding_half_ivfflat')"
                            ).fetchone()[0] is None
        assert len(conn.execute("SELECT * FROM search_by_vector(%s, k => 5)",
                                (stored[0],)).fetchall()) == 5
    migrations.upgrade(url)
    with connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT vector_probes()").fetchone()[0] is None


def test_it_builds_under_a_small_maintenance_work_mem(hard):
    # pgvector refuses a k-means sample larger than maintenance_work_mem: the procedure
    # gives its own build the room, whatever the server's setting
    with connect(hard["url"], autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1MB'")
        conn.execute("CALL build_vector_probe_index()")
        assert conn.execute("SELECT vector_probes(), current_setting('maintenance_work_mem')"
                            ).fetchone() == (3, "1MB")
        conn.execute("CALL drop_vector_probe_index()")
