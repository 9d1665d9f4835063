"""Scale-out and recovery with real PostgreSQL features on this machine:

* a hot standby made by `pgallery db replica create` (bundled pg_basebackup -R, streaming
  replication through a slot, a second port) serves every search function read-only and,
  once it has replayed a load on the primary, gives the primary's results;
* pg_dump / pg_restore of a loaded database into a fresh server gives the same results.

Each test cluster is its own (not the session's shared server), so copying it is quick.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from pgallery import migrations
from pgallery.commands import app
from pgallery.database import connect
from pgallery.database.embedded import EmbeddedServer, bin_dir
from pgallery.database.replica import SLOT, Replica
from pgallery.loading.writer import write_batch
from pgallery.search import EF_SEARCH_FLOOR
from pg_roles import login_member, with_credentials
from synthetic import load_collection, make_collection, queries_near

pytestmark = pytest.mark.database  # servers of their own

MODEL = "test/replica"
PROMPT = "a stormy sea"

# Every search function, with arguments that exercise filters, exact and ANN paths.
SEARCHES = [
    ("SELECT image_file, distance FROM search_by_vector(%(q)s, k => 8)", {}),
    ("SELECT image_file, distance FROM search_by_vector(%(q)s, k => 8, painting_type =>"
     " 'portrait', exact => true)", {}),
    ("SELECT image_file, distance FROM search_by_image('rep-000004.jpg', k => 8,"
     " school => 'dutch')", {}),
    ("SELECT image_file, distance FROM search_by_text(%(prompt)s, k => 8)", {}),
    ("SELECT image_file, score FROM search_hybrid(%(prompt)s, k => 8)", {}),
    ("SELECT image_file, distance FROM nearest_paintings(%(q)s, search_request(k => 8,"
     " technique => 'oil', year_from => 1500, year_to => 1700, model => %(model)s,"
     " ef_search => 100, probes => 1, exact => false), NULL)", {}),
]


def run(*args: str) -> CliRunner:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def results(url: str, queries: np.ndarray) -> list:
    """Every search function's rows for every query, as one comparable list."""
    out = []
    with connect(url, autocommit=True) as conn:
        for q in queries:
            for statement, _ in SEARCHES:
                rows = conn.execute(statement, {"q": q, "prompt": PROMPT, "model": MODEL})
                out.append([(f, round(d, 6)) for f, d in rows.fetchall()])
    return out


def fresh_server(prefix: str) -> EmbeddedServer:
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o755)  # the server may run as the unprivileged `pgallery` user
    server = EmbeddedServer(home / "pg")
    server.ensure_running()
    return server


def remove(server: EmbeddedServer) -> None:
    server.destroy()
    shutil.rmtree(server.home.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def collection():
    return make_collection(600, seed=21, clusters=12, prefix="rep")


@pytest.fixture(scope="module")
def primary(collection):
    """Its own embedded server, `pgallery` database migrated and loaded."""
    server = fresh_server("pgallery-primary-")
    url = server.url()
    migrations.upgrade(url)
    with connect(url) as conn:
        load_collection(conn, collection.__class__(collection.vectors[:500],
                                                   collection.records[:500]), MODEL)
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT store_prompt_embedding(%s, %s)", (PROMPT, collection.vectors[9]))
    yield server
    Replica(server).destroy()
    remove(server)


@pytest.mark.slow
def test_a_hot_standby_serves_every_search_and_follows_a_load_on_the_primary(
        primary, collection):
    home = str(primary.home)
    queries = queries_near(collection, 4, seed=5)
    assert "created" in run("--home", home, "db", "replica", "create").output
    replica = Replica(primary)
    standby_url = run("--home", home, "db", "replica", "url").output.strip()
    assert standby_url == replica.url() and str(replica.port) in standby_url
    assert replica.port != primary.port

    replica.wait_for_replay()
    before = results(primary.url(), queries)
    assert results(standby_url, queries) == before and all(before)

    # a load on the primary (new paintings, some of them nearer to the queries)
    extra = collection.records[500:]
    with connect(primary.url()) as conn:
        write_batch(conn, MODEL, extra, first_ordinal=500)
    after = results(primary.url(), queries)
    assert after != before
    assert "caught up" in run("--home", home, "db", "replica", "wait").output
    assert results(standby_url, queries) == after

    status = run("--home", home, "db", "replica", "status").output
    assert "streaming" in status and "True" in status
    st = replica.replica_status()
    assert (st.running, st.in_recovery, st.streaming) == (True, True, True)


def test_the_standby_is_read_only_and_has_the_primarys_roles(primary, collection):
    replica = Replica(primary)
    replica.create()
    replica.wait_for_replay()
    with connect(replica.url(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO painting (image_file) VALUES ('nope.jpg')")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("SELECT store_prompt_embedding('new prompt', %s)",
                         (collection.vectors[0],))
    # a login member of pgallery_reader, created on the primary, searches the standby
    with login_member(primary.url(), "pgallery_reader") as reader_primary:
        replica.wait_for_replay()
        info = psycopg.conninfo.conninfo_to_dict(reader_primary)
        reader_standby = with_credentials(replica.url(), info["user"], info["password"])
        with connect(reader_standby) as conn:
            rows = conn.execute("SELECT image_file FROM search_by_image('rep-000004.jpg',"
                                " k => 3)").fetchall()
            assert len(rows) == 3
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT embedding FROM painting_embedding LIMIT 1")


def test_a_stopped_standby_catches_up_from_its_slot_and_destroy_drops_the_slot(
        primary, collection):
    home = str(primary.home)
    replica = Replica(primary)
    replica.create()
    run("--home", home, "db", "replica", "stop")
    assert not replica.status().running
    with connect(primary.url()) as conn:  # changes while the standby is down
        write_batch(conn, MODEL, collection.records[:3], first_ordinal=10_000)
        conn.execute("UPDATE painting SET title = 'changed while down'"
                     " WHERE image_file = 'rep-000001.jpg'")
        conn.commit()
    run("--home", home, "db", "replica", "start")
    replica.wait_for_replay()
    with connect(replica.url()) as conn:
        assert conn.execute("SELECT title FROM painting WHERE image_file = 'rep-000001.jpg'"
                            ).fetchone()[0] == "changed while down"
    run("--home", home, "db", "replica", "destroy")
    assert not replica.home.exists()
    with psycopg.connect(primary.url()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                            (SLOT,)).fetchone()[0] == 0


def test_replica_commands_explain_when_there_is_no_replica_or_an_outside_database(primary):
    home = str(primary.home)
    Replica(primary).destroy()
    result = CliRunner().invoke(app, ["--home", home, "db", "replica", "url"])
    assert result.exit_code == 2 and "replica create" in result.output
    result = CliRunner().invoke(app, ["--database-url", primary.url(), "db", "replica",
                                      "status"])
    assert result.exit_code == 2 and "DATABASE_URL" in result.output


@pytest.mark.slow
def test_pg_dump_and_pg_restore_into_a_fresh_server_give_the_same_search_results(
        primary, collection, tmp_path):
    queries = queries_near(collection, 4, seed=8)
    expected = results(primary.url(), queries)
    dump = tmp_path / "pgallery.dump"
    tools = bin_dir()
    subprocess.run([str(tools / "pg_dump"), "-Fc", "-f", str(dump), "-d", "pgallery"],
                   env=primary.env(), check=True, capture_output=True, timeout=300)
    roles = subprocess.run([str(tools / "pg_dumpall"), "--roles-only", "--no-role-passwords"],
                           env=primary.env(),
                           check=True, capture_output=True, text=True, timeout=60).stdout

    target = fresh_server("pgallery-restore-")
    try:
        env = target.env()
        # roles are cluster-wide: pg_dump leaves them out, pg_dumpall --roles-only has them
        # (without passwords: the target's superuser keeps its own; CREATE ROLE postgres
        # fails harmlessly, it exists)
        subprocess.run([str(tools / "psql"), "-X", "-q", "-d", "postgres"], input=roles,
                       env=env, check=True, capture_output=True, text=True, timeout=60)
        # --create restores the database itself: its settings (hnsw.ef_search) and ACLs
        with psycopg.connect(target.url("postgres"), autocommit=True) as admin:
            admin.execute("DROP DATABASE pgallery")
        restore = subprocess.run(
            [str(tools / "pg_restore"), "--create", "--exit-on-error", "-d", "postgres",
             str(dump)], env=env, capture_output=True, text=True, timeout=300)
        assert restore.returncode == 0, restore.stderr
        assert results(target.url(), queries) == expected
        assert migrations.current_revision(target.url()) == migrations.head_revision()
        with psycopg.connect(target.url()) as conn:
            assert conn.execute("SELECT count(*) FROM painting").fetchone()[0] == \
                   conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
            conn.execute("SELECT '[1]'::vector")
            assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(EF_SEARCH_FLOOR)
        with login_member(target.url(), "pgallery_reader") as reader:
            with connect(reader) as conn:
                assert len(conn.execute("SELECT * FROM search_by_text(%s, k => 4)",
                                        (PROMPT,)).fetchall()) == 4
    finally:
        remove(target)
