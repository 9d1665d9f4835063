"""Least privilege: pgallery_reader searches and reads metadata only; pgallery_writer loads
but cannot truncate, delete paintings or change the schema. Each test connects as a real
LOGIN member of the role and proves what is allowed and what is refused."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from pgallery import migrations
from pgallery.commands import app
from pgallery.database import connect
from pgallery.database.embedded import EmbeddedServer
from pgallery.loading.records import PaintingRecord
from pgallery.loading.after_load import after_load
from pgallery.loading.writer import record_failures, register_model, write_batch
from pg_roles import login_member
from synthetic import load_collection, make_collection

MODEL = "test/roles"
PROMPT = "a stormy sea"
SEARCHES = {
    "search_by_vector": "SELECT image_file FROM search_by_vector(%(q)s, k => 5)",
    "search_by_vector (filtered, exact)":
        "SELECT image_file FROM search_by_vector(%(q)s, k => 5, school => 'dutch',"
        " exact => true)",
    "search_by_image": "SELECT image_file FROM search_by_image('roles-000003.jpg', k => 5)",
    "search_by_text": "SELECT image_file FROM search_by_text(%(prompt)s, k => 5)",
    "search_hybrid": "SELECT image_file FROM search_hybrid(%(prompt)s, k => 5)",
    "nearest_paintings":
        "SELECT image_file FROM nearest_paintings(%(q)s, checked_request(search_request("
        "k => 5, ef_search => 40, probes => 1, exact => true)), NULL)",
    "prompt_vector": "SELECT prompt_vector(%(prompt)s, %(model)s) IS NOT NULL",
    "search_combined":
        "SELECT image_file FROM search_combined(paintings => ARRAY['roles-000003.jpg'],"
        " prompts => ARRAY[%(prompt)s], negative_vectors => ARRAY[%(q)s], k => 5)",
    "near_duplicates": "SELECT image_file FROM near_duplicates(min_similarity => 0)",
}
DEFINERS = {"nearest_paintings", "search_by_image", "search_hybrid", "prompt_vector",
            "build_ivfflat_index", "tune_search_defaults", "restore_hnsw_index",
            "search_combined", "near_duplicates", "record_index_tuning",
            "record_query_kinds", "build_vector_probe_index"}
# definers that run dynamic SQL: each formats only numbers into its statement
DYNAMIC = {"build_ivfflat_index", "tune_search_defaults", "record_index_tuning",
           "record_query_kinds", "build_vector_probe_index"}


@pytest.fixture(scope="module")
def collection():
    return make_collection(300, seed=5, prefix="roles")


@pytest.fixture(scope="module")
def roles_db(make_database, collection):
    url = make_database(prefix="roles")
    with connect(url) as conn:
        load_collection(conn, collection, MODEL)
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT store_prompt_embedding(%s, %s)", (PROMPT, collection.vectors[0]))
        conn.execute("INSERT INTO embedding_failure (image_file, model, code, message)"
                     " VALUES ('broken.jpg', %s, 'InvalidImage', 'corrupt')", (MODEL,))
    return url


@pytest.fixture(scope="module")
def reader_url(roles_db):
    with login_member(roles_db, "pgallery_reader") as url:
        yield url


@pytest.fixture(scope="module")
def writer_url(roles_db):
    with login_member(roles_db, "pgallery_writer") as url:
        yield url


def params(collection):
    return {"q": collection.vectors[10], "prompt": PROMPT, "model": MODEL}


def refused(url: str, statement: str, args=None) -> psycopg.Error:
    """Run a statement that must be refused for lack of privilege; return the error."""
    with connect(url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(statement, args)
    return info.value


# -- the roles themselves -------------------------------------------------------------------

def test_both_roles_are_nologin_groups_and_the_writer_is_also_a_reader(roles_db):
    with psycopg.connect(roles_db) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
            " FROM pg_roles WHERE rolname LIKE 'pgallery\\_%'").fetchall()}
        assert set(rows) == {"pgallery_reader", "pgallery_writer"}
        assert all(flags == (False, False, False, False, False) for flags in rows.values())
        assert conn.execute("SELECT pg_has_role('pgallery_writer', 'pgallery_reader',"
                            " 'USAGE')").fetchone()[0]
        assert not conn.execute("SELECT pg_has_role('pgallery_reader', 'pgallery_writer',"
                                " 'MEMBER')").fetchone()[0]


def test_the_definer_functions_are_exactly_the_reviewed_ones_and_pin_search_path(roles_db):
    with psycopg.connect(roles_db) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.proconfig, p.prosrc FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND p.prosecdef").fetchall()
    assert {name for name, _, _ in rows} == DEFINERS
    for name, config, source in rows:
        path = next(c for c in config if c.startswith("search_path="))
        assert path.endswith("pg_temp"), (name, path)
        # dynamic SQL only where the review allows it (an integer formatted with %s)
        assert ("EXECUTE" in source.upper()) == (name in DYNAMIC), name


def test_public_cannot_execute_any_entry_point_nor_create_in_the_schema(roles_db):
    with psycopg.connect(roles_db) as conn:
        public_entry_points = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,"
            " aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            " WHERE n.nspname = 'public' AND a.grantee = 0"
            " AND p.proname = ANY(%s)",
            (list(DEFINERS | {"search_by_vector", "search_by_text", "merge_staged_paintings",
                              "create_painting_staging", "register_model", "use_model",
                              "store_prompt_embedding", "drop_ivfflat_index"}),)).fetchall()
        assert public_entry_points == []
        assert not conn.execute("SELECT has_schema_privilege('public', 'public', 'CREATE')"
                                ).fetchone()[0]
        assert not conn.execute("SELECT has_database_privilege('public', current_database(),"
                                " 'TEMPORARY')").fetchone()[0]


# -- the reader -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", SEARCHES)
def test_the_reader_runs_every_search_function_with_the_owners_results(
        roles_db, reader_url, collection, name):
    statement, args = SEARCHES[name], params(collection)
    with connect(roles_db) as admin, connect(reader_url) as reader:
        expected = admin.execute(statement, args).fetchall()
        got = reader.execute(statement, args).fetchall()
    assert got == expected and got and got[0][0] is not None


def test_the_reader_reads_metadata_and_which_models_embedded_each_painting(
        reader_url, collection):
    with connect(reader_url) as conn:
        assert conn.execute("SELECT count(*) FROM painting").fetchone()[0] == 300
        assert conn.execute("SELECT title, author FROM painting WHERE image_file ="
                            " 'roles-000007.jpg'").fetchone() == ("Painting number 7",
                                                                  "GOGH, Vincent van")
        assert conn.execute("SELECT name FROM embedding_model WHERE is_active"
                            ).fetchone()[0] == MODEL
        assert conn.execute("SELECT count(*) FROM painting_embedding WHERE model = %s",
                            (MODEL,)).fetchone()[0] == 300


READER_REFUSED = {
    "read stored vectors": "SELECT embedding FROM painting_embedding LIMIT 1",
    "read all of painting_embedding": "SELECT * FROM painting_embedding LIMIT 1",
    "read the prompt cache": "SELECT * FROM prompt_embedding",
    "read the failure log": "SELECT * FROM embedding_failure",
    "insert a painting": "INSERT INTO painting (image_file) VALUES ('evil.jpg')",
    "update a painting": "UPDATE painting SET title = 'x'",
    "delete paintings": "DELETE FROM painting",
    "truncate": "TRUNCATE painting CASCADE",
    "update the active model": "UPDATE embedding_model SET is_active = false",
    "create a table": "CREATE TABLE evil (x int)",
    "create a temporary table": "CREATE TEMP TABLE evil (x int)",
    "create a function": "CREATE FUNCTION evil() RETURNS int LANGUAGE sql RETURN 1",
    "drop a table": "DROP TABLE embedding_failure",
    "alter a table": "ALTER TABLE painting ADD COLUMN evil int",
    "create an index": "CREATE INDEX evil ON painting (title)",
    "lock a table exclusively": "LOCK TABLE painting IN ACCESS EXCLUSIVE MODE",
    "stage a batch": "SELECT create_painting_staging()",
    "merge a batch": "SELECT * FROM merge_staged_paintings('test/roles')",
    "register a model": "SELECT register_model('evil/model', 3)",
    "switch the model": "SELECT use_model('test/roles')",
    "cache a prompt": "SELECT store_prompt_embedding('x', '[1,2,3]')",
    "build ivfflat": "CALL build_ivfflat_index(1)",
    "drop ivfflat": "CALL drop_ivfflat_index()",
}


@pytest.mark.parametrize("action", READER_REFUSED)
def test_the_reader_is_refused(reader_url, roles_db, action):
    before = snapshot(roles_db)
    error = refused(reader_url, READER_REFUSED[action])
    assert "permission denied" in str(error) or "must be owner" in str(error)
    assert snapshot(roles_db) == before


def snapshot(url):
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM painting), (SELECT count(*) FROM painting_embedding),"
            " (SELECT count(*) FROM prompt_embedding), (SELECT count(*) FROM embedding_model),"
            " (SELECT string_agg(name || is_active, ',') FROM embedding_model),"
            " (SELECT md5(string_agg(image_file || coalesce(title, ''), ',' ORDER BY"
            "  image_file)) FROM painting),"
            " (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
        ).fetchone()


def test_the_reader_can_search_from_the_cli_but_not_load(reader_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", reader_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["search", "similar", "roles-000003.jpg", "--k", "3",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.count("roles-0") == 3
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0 and MODEL in result.output, result.output


def test_a_reader_running_a_write_command_gets_a_message_not_a_traceback(
        reader_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", reader_url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["models", "use", MODEL])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "permission denied" in result.output


# -- the writer -----------------------------------------------------------------------------

def test_the_writer_loads_batches_records_failures_and_rebuilds_ivfflat(
        writer_url, roles_db):
    rng = np.random.default_rng(3)
    records = [PaintingRecord(image_file=f"writer-{i}.jpg", title=f"Loaded {i}",
                              author="WRITER, Test", date="1650",
                              embedding=rng.standard_normal(1024).astype(np.float32))
               for i in range(20)]
    with connect(writer_url) as conn:
        register_model(conn, MODEL, 1024, "test")
        counts = write_batch(conn, MODEL, records)
        again = write_batch(conn, MODEL, records)  # a re-run changes nothing
        record_failures(conn, MODEL, [("writer-bad.jpg", None, "InvalidImage", "corrupt")])
        conn.execute("DELETE FROM embedding_failure WHERE image_file = 'writer-bad.jpg'")
        conn.commit()
        conn.autocommit = True
        conn.execute("CALL build_ivfflat_index(2)")
        # ANALYZE (MAINTAIN), the definer rebuild and tuning, as after the writer's loads
        assert after_load(conn).ivfflat_rebuilt is True
        conn.execute("SELECT store_prompt_embedding('writer prompt', %s, %s)",
                     (records[0].embedding, MODEL))
        assert conn.execute("SELECT count(*) FROM search_by_text('writer prompt', k => 3)"
                            ).fetchone()[0] == 3
    assert (counts.inserted, counts.embeddings) == (20, 20)
    assert (again.inserted, again.updated, again.embeddings) == (0, 0, 0)
    with connect(roles_db, autocommit=True) as admin:
        assert admin.execute("SELECT count(*) FROM painting WHERE image_file LIKE 'writer-%'"
                             ).fetchone()[0] == 20
        assert admin.execute("SELECT to_regclass('painting_embedding_ivfflat') IS NOT NULL"
                             ).fetchone()[0]
        admin.execute("CALL drop_ivfflat_index()")


WRITER_REFUSED = {
    "truncate": "TRUNCATE painting CASCADE",
    "delete paintings": "DELETE FROM painting",
    "delete vectors": "DELETE FROM painting_embedding",
    "create a table": "CREATE TABLE evil (x int)",
    "drop a table": "DROP TABLE embedding_failure",
    "alter a table": "ALTER TABLE painting ADD COLUMN evil int",
    "create an index": "CREATE INDEX evil ON painting (title)",
    "drop an index": "DROP INDEX painting_embedding_hnsw",
    "replace a function": "CREATE OR REPLACE FUNCTION prompt_key(prompt text) RETURNS bytea"
                          " LANGUAGE sql IMMUTABLE RETURN NULL",
    "drop ivfflat": "CALL drop_ivfflat_index()",
    "rewrite the schema version": "UPDATE alembic_version SET version_num = '0001'",
}


@pytest.mark.parametrize("action", WRITER_REFUSED)
def test_the_writer_is_refused(writer_url, roles_db, action):
    before = snapshot(roles_db)
    error = refused(writer_url, WRITER_REFUSED[action])
    assert "permission denied" in str(error) or "must be owner" in str(error)
    assert snapshot(roles_db) == before


# -- migrations and cluster-wide roles ------------------------------------------------------

def test_reapplying_the_migrations_with_the_roles_already_there_changes_nothing(roles_db):
    def grants():
        with psycopg.connect(roles_db) as conn:
            return conn.execute(
                "SELECT grantee, table_name, privilege_type"
                " FROM information_schema.role_table_grants WHERE grantee LIKE 'pgallery\\_%'"
                " UNION ALL SELECT grantee, routine_name, privilege_type"
                " FROM information_schema.role_routine_grants"
                " WHERE grantee LIKE 'pgallery\\_%' ORDER BY 1, 2, 3").fetchall()

    before = grants()
    migrations.downgrade(roles_db, migrations.revisions()[0])
    migrations.upgrade(roles_db)
    assert grants() == before and len(before) > 30


@pytest.fixture
def own_server():
    """A cluster of its own: the roles can be dropped there without touching other tests."""
    home = Path(tempfile.mkdtemp(prefix="pgallery-roles-"))
    home.chmod(0o755)  # the server may run as the unprivileged `pgallery` user
    server = EmbeddedServer(home / "pg")
    server.ensure_running()
    yield server
    server.destroy()
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.database  # a server of its own
def test_downgrade_keeps_roles_another_database_uses_and_drops_them_with_the_last(own_server):
    def roles(url):
        with psycopg.connect(url) as conn:
            return {r[0] for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgallery\\_%'")}

    urls = []
    for name in ("one", "two"):
        with psycopg.connect(own_server.url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        urls.append(own_server.url(name))
        migrations.upgrade(urls[-1])  # the second finds the roles already there
    both = {"pgallery_reader", "pgallery_writer"}
    assert roles(urls[0]) == both
    migrations.downgrade(urls[0], "base")
    assert roles(urls[0]) == both  # database two still grants them privileges
    with psycopg.connect(urls[0]) as conn:  # and database one is back to PUBLIC defaults
        assert conn.execute("SELECT has_database_privilege('public', current_database(),"
                            " 'TEMPORARY')").fetchone()[0]
        assert "pgallery" not in conn.execute(
            "SELECT coalesce(datacl::text, '') FROM pg_database"
            " WHERE datname = current_database()").fetchone()[0]
    migrations.downgrade(urls[1], "base")
    assert roles(urls[1]) == set()
    migrations.upgrade(urls[0])
    assert roles(urls[0]) == both
