"""pgallery on a Citus cluster: a coordinator and two workers on this machine, started by
`pgallery db cluster create` from the PostgreSQL that PGALLERY_CITUS_PG_BIN names (one with
Citus and pgvector installed: docs/scale-out.md says how to build one). CI has no Citus:
without the variable every test here is skipped, saying so.

The same collection is loaded into the cluster and into a single server (the session's
test server), and every search function is held to the single server's answers: exact
search row for row, ANN search at least its recall. Then what only a cluster has: rows
spread over the workers, each shard scanning its own HNSW index with the call's ef_search,
a worker that is down, an upgrade from the revision before the Citus layer, the reader.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from pgallery import migrations
from pgallery.commands import app
from pgallery.database import connect
from pgallery.database.cluster import LocalCluster
from pgallery.loading.palettes import store_palettes
from pgallery.loading.writer import write_batch, write_batch_staged
from pgallery.palette import Palette, srgb_to_lab
from pg_roles import login_member, with_credentials
from synthetic import Collection, load_collection, make_collection, queries_near

PG_BIN = os.environ.get("PGALLERY_CITUS_PG_BIN")

pytestmark = [
    pytest.mark.citus,
    pytest.mark.database,   # servers of their own
    pytest.mark.skipif(not PG_BIN, reason="PGALLERY_CITUS_PG_BIN is not set: no "
                       "PostgreSQL with Citus to start a cluster from (docs/scale-out.md)"),
]

MODEL = "test/synthetic"
PROMPT = "a stormy sea"
N = 3000


def cli(env_url: str, *args: str, home: Path | None = None):
    env = {"DATABASE_URL": env_url} if env_url else {}
    if home is not None:
        env["PGALLERY_HOME"] = str(home)
    return CliRunner().invoke(app, list(args), env=env)


def with_duplicate(collection: Collection) -> Collection:
    """The collection plus a near copy of painting 11 (for near_duplicates)."""
    copy = collection.records[11].__class__(**{**collection.records[11].__dict__,
                                               "image_file": "syn-copy-of-11.jpg"})
    noise = np.random.default_rng(5).standard_normal(1024).astype(np.float32) * 0.002
    v = collection.vectors[11] + noise
    copy.embedding = v / np.linalg.norm(v)
    return Collection(np.vstack([collection.vectors, copy.embedding[None, :]]),
                      [*collection.records, copy])


@pytest.fixture(scope="module")
def collection():
    return with_duplicate(make_collection(N, seed=3))


def palettes(collection: Collection, count: int = 600):
    """Palettes for the first ``count`` paintings: three random colours each, as the
    loader would store them (the synthetic collection has no pixels to read)."""
    rng = np.random.default_rng(12)
    for record in collection.records[:count]:
        shares = rng.dirichlet(np.ones(3)).astype(np.float32)
        order = np.argsort(-shares)
        lab = srgb_to_lab(rng.integers(0, 256, (3, 3)))
        yield record.image_file, Palette(lab=lab[order], shares=shares[order]), None


def loaded(url: str, collection: Collection) -> None:
    with connect(url) as conn:
        load_collection(conn, collection, MODEL, batch=1000)
        store_palettes(conn, palettes(collection))
        conn.commit()
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT store_prompt_embedding(%s, %s)", (PROMPT, collection.vectors[97]))


@pytest.fixture(scope="module")
def cluster(collection):
    home = Path(tempfile.mkdtemp(prefix="pgallery-citus-"))
    home.chmod(0o755)     # the nodes may run as the unprivileged `pgallery` user
    result = cli("", "db", "cluster", "create", "--workers", "2", "--pg-bin", PG_BIN,
                 home=home)
    assert result.exit_code == 0, result.output
    c = LocalCluster(home)
    try:        # a setup that fails stops the nodes too (else they outlive the run)
        url = c.url()
        result = cli(url, "migrate")
        assert result.exit_code == 0, result.output
        loaded(url, collection)
        yield c
    finally:
        c.destroy()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def single(make_database, collection):
    url = make_database()
    loaded(url, collection)
    return url


def rows(url: str, statement: str, **args) -> list[tuple]:
    with connect(url, autocommit=True) as conn:
        return [tuple(round(v, 6) if isinstance(v, float) else v for v in row)
                for row in conn.execute(statement, args).fetchall()]


# Every search function, exact where the answer must be the single server's row for row.
EXACT_SEARCHES = [
    "SELECT image_file, distance FROM search_by_vector(%(q)s, k => 10, exact => true)",
    "SELECT image_file, distance FROM search_by_vector(%(q)s, k => 10, page => 3,"
    " exact => true)",
    "SELECT image_file, distance FROM search_by_vector(%(q)s, k => 10, exact => true,"
    " painting_type => 'portrait', school => 'dutch')",
    "SELECT image_file, distance FROM search_by_vector(%(q)s, k => 10, exact => true,"
    " author => 'gogh')",
    "SELECT image_file, distance FROM search_by_vector(%(q)s, k => 20, exact => true,"
    " order_by => 'date', min_similarity => 0.1)",
    "SELECT image_file, distance FROM search_by_image('syn-000042.jpg', k => 10,"
    " exact => true, year_from => 1500, year_to => 1700)",
    "SELECT image_file, distance FROM search_by_text(%(prompt)s, k => 10, exact => true)",
    "SELECT image_file, score FROM search_hybrid(%(prompt)s, k => 10, exact => true)",
    "SELECT image_file, distance FROM search_combined(paintings => ARRAY['syn-000042.jpg',"
    " 'syn-000043.jpg'], negative_prompts => ARRAY[%(prompt)s], k => 10, exact => true)",
    "SELECT image_file, similarity FROM search_by_colour(ARRAY['#1e3a8a', '#d4af37:0.5'],"
    " k => 10, exact => true)",
    "SELECT image_file, similarity FROM search_by_colour(ARRAY['#1e3a8a'], k => 10,"
    " painting_type => 'portrait')",
]


def test_migrate_spreads_the_collection_over_the_workers(cluster, collection):
    url = cluster.url()
    with connect(url, autocommit=True) as conn:
        kinds = dict(conn.execute("SELECT table_name::text, citus_table_type"
                                  " FROM citus_tables").fetchall())
        per_worker = conn.execute(
            "SELECT nodeport, sum(result::bigint) FROM run_command_on_shards("
            "'painting_embedding', 'SELECT count(*) FROM %s') r"
            " JOIN citus_shards s USING (shardid) GROUP BY 1").fetchall()
        half = conn.execute("SELECT count(*) FROM painting_embedding_half").fetchone()[0]
    assert kinds == {"painting_embedding": "distributed",
                     "painting_embedding_half": "distributed",
                     "painting": "reference", "embedding_model": "reference",
                     "prompt_embedding": "reference", "embedding_failure": "reference",
                     "index_tuning": "reference", "painting_palette": "reference",
                     "painting_map": "reference"}
    assert len(per_worker) == 2
    assert sum(n for _, n in per_worker) == len(collection.records)
    assert all(n > len(collection.records) / 4 for _, n in per_worker)   # both hold rows
    assert half == len(collection.records)          # the compact copy, filled by the merge

    status = cli(url, "db", "status")
    assert status.exit_code == 0, status.output
    assert "Citus coordinator with 2 worker(s)" in status.output
    assert "distributed by painting_id, 8 shards" in status.output


def test_exact_search_gives_the_single_servers_answers(cluster, single, collection):
    for q in queries_near(collection, 3, seed=8):
        for statement in EXACT_SEARCHES:
            expected = rows(single, statement, q=q, prompt=PROMPT)
            assert expected, statement
            assert rows(cluster.url(), statement, q=q, prompt=PROMPT) == expected, statement


def test_near_duplicate_groups_are_the_single_servers(cluster, single):
    statement = ("SELECT group_id, image_file, round(similarity::numeric, 4)"
                 " FROM near_duplicates(min_similarity => 0.99, school => 'german')")
    expected = rows(single, statement)
    assert {r[1] for r in expected} == {"syn-000011.jpg", "syn-copy-of-11.jpg"}
    assert rows(cluster.url(), statement) == expected


def recall(url: str, collection: Collection, queries: np.ndarray, **filters) -> float:
    got = []
    args = "".join(f", {k} => %({k})s" for k in filters)
    with connect(url, autocommit=True) as conn:
        for q in queries:
            found = [r[0] for r in conn.execute(
                f"SELECT image_file FROM search_by_vector(%(q)s, k => 10, ef_search => 40"
                f"{args})", {"q": q, **filters}).fetchall()]
            truth = collection.exact_top_k(q, 10, **filters)
            got.append(len(set(found) & set(truth)) / 10)
    return float(np.mean(got))


def test_ann_recall_is_at_least_the_single_servers(cluster, single, collection):
    queries = queries_near(collection, 30, seed=9)
    for filters in ({}, {"painting_type": "landscape"}):
        on_cluster = recall(cluster.url(), collection, queries, **filters)
        on_single = recall(single, collection, queries, **filters)
        assert on_cluster >= on_single, (filters, on_cluster, on_single)
        assert on_cluster >= 0.9, filters


def test_the_calls_ef_search_reaches_every_shard(cluster, collection):
    q = queries_near(collection, 1, seed=10)[0]
    with connect(cluster.url()) as conn:
        conn.execute("SELECT count(*) FROM search_by_vector(%s, k => 10, ef_search => 123)",
                     (q,))
        # in the same transaction, on the connections that scanned the shards
        seen = conn.execute("SELECT DISTINCT current_setting('hnsw.ef_search')"
                            " FROM painting_embedding_half").fetchall()
        coordinator = conn.execute("SHOW hnsw.ef_search").fetchone()[0]
        conn.rollback()
    assert seen == [("123",)]
    assert coordinator != "123"     # nearest_paintings' SET clause restored the session's


def test_every_shard_answers_the_top_k_from_its_own_hnsw_index(cluster, collection):
    q = queries_near(collection, 1, seed=11)[0]
    with connect(cluster.url()) as conn:
        # what nearest_paintings' unfiltered ANN statement runs under: the settings it
        # sends the workers, in its transaction
        conn.execute("SET LOCAL citus.explain_all_tasks = on")
        conn.execute("SELECT shard_search_settings(40, 1)")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)"
            " SELECT e.painting_id FROM painting_embedding e WHERE e.model = %s"
            " ORDER BY l2_normalize(e.embedding)::halfvec(1024)"
            "          <=> l2_normalize(%s::vector)::halfvec(1024) LIMIT 10",
            (MODEL, q)).fetchall())
        conn.rollback()
    assert "Task Count: 8" in plan
    assert plan.count("Index Scan using painting_embedding_hnsw_") == 8, plan


def test_the_search_cli_and_a_stopped_worker(cluster):
    url = cluster.url()
    ok = cli(url, "search", "painting", "syn-000042.jpg", "-k", "3")
    assert ok.exit_code == 0, ok.output
    worker = cluster.workers[1]
    port = worker.port
    cluster.stop("worker-2")
    try:
        down = cli(url, "search", "painting", "syn-000042.jpg", "-k", "3")
        assert down.exit_code == 4
        message = down.output.strip().splitlines()
        assert len(message) == 1, down.output
        assert f"the Citus worker 127.0.0.1:{port} is not reachable" in message[0]
        assert "Traceback" not in down.output
    finally:
        cluster.start()
    again = cli(url, "search", "painting", "syn-000042.jpg", "-k", "3")
    assert again.exit_code == 0, again.output
    assert again.output == ok.output


def orphans(url: str) -> int:
    """Paintings without their vector, and vectors without their compact copy."""
    with connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM (SELECT painting_id FROM painting EXCEPT"
            "        SELECT painting_id FROM painting_embedding) AS lost)"
            "     + (SELECT count(*) FROM (SELECT painting_id FROM painting_embedding EXCEPT"
            "        SELECT painting_id FROM painting_embedding_half) AS uncopied)"
        ).fetchone()[0]


def test_an_interrupted_load_leaves_no_painting_without_its_vector(cluster):
    url = cluster.url()
    extra = make_collection(300, seed=12, prefix="late")
    batches = [list(enumerate(extra.records[i:i + 100], start=i)) for i in (0, 100, 200)]

    class Interrupted(Exception):
        pass

    def interrupt():
        raise Interrupted

    with connect(url) as conn:
        write_batch_staged(conn, MODEL, batches[0], [])
        with pytest.raises(Interrupted):     # killed between the COPY and the merge
            write_batch_staged(conn, MODEL, batches[1], [], before_merge=interrupt)
    cluster.stop("worker-1")                 # and a worker lost in the middle of a batch
    try:
        with connect(url) as conn, pytest.raises(psycopg.Error):
            write_batch_staged(conn, MODEL, batches[2], [])
    finally:
        cluster.start()
    assert orphans(url) == 0
    with connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM painting WHERE image_file LIKE 'late-%'"
                            ).fetchone()[0] == 100
    with connect(url) as conn:                # the re-run completes it
        for batch in batches:
            write_batch_staged(conn, MODEL, batch, [])
    assert orphans(url) == 0
    with connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM painting_embedding_half h JOIN painting p"
                            " USING (painting_id) WHERE p.image_file LIKE 'late-%'"
                            ).fetchone()[0] == 300


def test_the_reader_searches_through_the_coordinator_and_writes_nowhere(cluster, collection):
    url = cluster.url()
    q = queries_near(collection, 1, seed=13)[0]
    with login_member(url, "pgallery_reader") as reader:
        with connect(reader, autocommit=True) as conn:
            assert len(conn.execute("SELECT * FROM search_by_vector(%s, k => 5)",
                                    (q,)).fetchall()) == 5
            assert len(conn.execute("SELECT * FROM search_by_vector(%s, k => 5,"
                                    " school => 'dutch')", (q,)).fetchall()) == 5
            for statement in ("INSERT INTO painting (image_file) VALUES ('x.jpg')",
                              "UPDATE painting SET title = 'x'",
                              "SELECT embedding FROM painting_embedding LIMIT 1",
                              "DELETE FROM painting_embedding_half"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        # straight to a worker: its copies of the tables refuse the reader too
        user = psycopg.conninfo.conninfo_to_dict(reader)
        on_worker = with_credentials(cluster.workers[0].url(), user["user"],
                                     user["password"])
        with psycopg.connect(on_worker, autocommit=True) as conn:
            shard = conn.execute("SELECT shard_name FROM citus_shards WHERE table_name ="
                                 " 'painting'::regclass AND nodeport = %s LIMIT 1",
                                 (cluster.workers[0].port,)).fetchone()[0]
            for statement in (f"INSERT INTO {shard} (image_file) VALUES ('x.jpg')",
                              "INSERT INTO painting (image_file) VALUES ('x.jpg')",
                              "SELECT embedding FROM painting_embedding LIMIT 1"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)


@pytest.fixture
def empty_cluster():
    """A coordinator and one worker, nothing migrated."""
    home = Path(tempfile.mkdtemp(prefix="pgallery-citus-empty-"))
    home.chmod(0o755)
    c = LocalCluster(home)
    c.create(1, PG_BIN)
    yield c
    c.destroy()
    shutil.rmtree(home, ignore_errors=True)


def test_migrate_upgrades_a_cluster_laid_out_before_the_citus_layer(empty_cluster, single):
    url = empty_cluster.url()
    migrations.upgrade(url, "0014")        # laid out by the runner, with 0014's functions
    with connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM citus_tables").fetchone()[0] == 7
    result = cli(url, "migrate")
    assert result.exit_code == 0, result.output
    assert migrations.current_revision(url) == migrations.head_revision()
    small = make_collection(400, seed=3)
    with connect(url) as conn:
        load_collection(conn, small, MODEL)
    q = queries_near(small, 1, seed=14)[0]
    with connect(url, autocommit=True) as conn:
        got = [r[0] for r in conn.execute(
            "SELECT image_file FROM search_by_vector(%s, k => 10, exact => true,"
            " painting_type => 'genre')", (q,)).fetchall()]
        ann = conn.execute("SELECT count(*) FROM search_by_vector(%s, k => 10)",
                           (q,)).fetchone()[0]
    assert got == small.exact_top_k(q, 10, painting_type="genre")
    assert ann == 10
    # and not back below the Citus layer, whose older functions cannot run there
    result = cli(url, "migrate", "--to", "0014")
    assert result.exit_code != 0
    assert "predates pgallery's Citus support" in result.output
    assert "Traceback" not in result.output
    assert migrations.current_revision(url) == migrations.head_revision()


def test_a_file_load_through_the_coordinator_runs_every_after_load_step(empty_cluster,
                                                                         tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    url = empty_cluster.url()
    assert cli(url, "migrate").exit_code == 0
    small = make_collection(600, seed=4)
    path = tmp_path / "small.parquet"
    pq.write_table(pa.table({
        "image_file": [r.image_file for r in small.records],
        "vector": pa.FixedSizeListArray.from_arrays(small.vectors.ravel(), 1024)}), path)
    result = cli(url, "load", "--embeddings", str(path), "--model", MODEL)
    assert result.exit_code == 0, result.output
    with connect(url, autocommit=True) as conn:
        # the map's first layout reads the vectors through the coordinator too
        assert conn.execute("SELECT count(*) FROM painting_map").fetchone()[0] == 600
        assert conn.execute("SELECT count(*) FROM painting_embedding_half"
                            ).fetchone()[0] == 600


def test_show_models_and_index_tune_work_through_the_coordinator(cluster):
    url = cluster.url()
    shown = cli(url, "show", "syn-000042.jpg")
    assert shown.exit_code == 0, shown.output
    assert MODEL in shown.output                      # embedded_with, from the shards
    listed = cli(url, "models", "list")
    assert listed.exit_code == 0, listed.output
    with connect(url, autocommit=True) as conn:
        vectors = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
    assert vectors >= N + 1
    assert f" {vectors} " in listed.output           # its vectors, counted on the shards
    tuned = cli(url, "index", "tune", "--sample", "40", "--target-recall", "0.9")
    assert tuned.exit_code == 0, tuned.output
    assert "default is now" in tuned.output, tuned.output
    with connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM index_tuning").fetchone()[0] == 1


def test_the_probe_index_of_new_vectors_is_skipped_on_the_sharded_copy(cluster, collection):
    # the compact copy is sharded: no IVFFlat partition there, and searches keep the graph
    url = cluster.url()
    with connect(url, autocommit=True) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("CALL build_vector_probe_index()")
        assert conn.execute("SELECT to_regclass('painting_embedding_half_ivfflat'),"
                            " vector_probes()").fetchone() == (None, None)
    assert any("sharded" in n for n in notices), notices
    q = queries_near(collection, 1, seed=8)[0]
    assert len(rows(url, "SELECT image_file FROM search_by_vector(%(q)s, k => 10)", q=q)) == 10


def test_the_web_app_searches_the_cluster_and_says_which_worker_is_down(cluster,
                                                                         tmp_path):
    import requests

    from pgallery.web import WebConfig
    from web_server import running_server

    with running_server(cluster.url(), WebConfig(home=tmp_path)) as (base, _):
        ok = requests.get(base + "/api/search", params={"similar": "syn-000042.jpg", "k": 5,
                                                        "school": "dutch"}, timeout=60)
        assert ok.status_code == 200, ok.text[:300]
        assert len(ok.json()["results"]) == 5
        port = cluster.workers[0].port
        cluster.stop("worker-1")
        try:
            down = requests.get(base + "/api/search", params={"similar": "syn-000042.jpg",
                                                              "k": 5}, timeout=60)
        finally:
            cluster.start()
        assert down.status_code == 503, down.text[:300]
        assert f"the Citus worker 127.0.0.1:{port} is not reachable" in down.text
        again = requests.get(base + "/api/search", params={"similar": "syn-000042.jpg",
                                                           "k": 5, "school": "dutch"},
                             timeout=60)
        assert again.status_code == 200 and again.json() == ok.json()
