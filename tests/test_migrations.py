"""Alembic owns the database, and every revision has one schema whatever the path.

The layout (docs/migrations.md): each step runs its run-once SQL and ends holding exactly
the replaceable layer of the revision it arrives at (replaced in place where it can be:
tests/test_upgrade_keeps_user_objects.py). These tests hold it to that: the catalog of a
database brought up to a revision equals the catalog of one brought down to it from head,
base holds nothing of pgallery's, and a landed layer cannot change quietly, nor be frozen
by anything but `python -m pgallery.migrations freeze`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from catalog import differences, pgallery_objects, schema_of
from pgallery import migrations
from pgallery.errors import DatabaseError
from pgallery.search import EF_SEARCH_FLOOR

REPO = Path(__file__).resolve().parents[1]
REVISIONS = migrations.revisions()


@pytest.fixture(scope="module")
def empty_schema(make_database):
    return pgallery_objects(schema_of(make_database(migrate=False)))


@pytest.mark.parametrize("revision", REVISIONS)
def test_each_revision_has_the_same_schema_going_up_and_coming_down(make_database, revision):
    up = make_database(migrate=False)
    for step in REVISIONS[:REVISIONS.index(revision) + 1]:   # one revision at a time
        migrations.upgrade(up, step)
    down = make_database()
    migrations.downgrade(down, revision)
    assert migrations.current_revision(up) == migrations.current_revision(down) == revision
    assert differences(schema_of(up), schema_of(down)) == []


def test_base_holds_nothing_of_pgallery_after_a_round_trip(make_database, empty_schema):
    url = make_database()
    migrations.downgrade(url, "base")
    assert migrations.current_revision(url) is None
    assert differences(pgallery_objects(schema_of(url)), empty_schema) == []
    migrations.upgrade(url)
    assert migrations.current_revision(url) == migrations.head_revision()


@pytest.mark.parametrize("revision", REVISIONS)
def test_a_landed_layer_never_changes(revision):
    # Editing sql/idempotent/ changes head's layer: freeze it first and add a revision
    # (python -m pgallery.migrations freeze; docs/migrations.md).
    assert migrations.recorded_digest(revision) == migrations.layer_digest(revision), (
        f"the layer of revision {revision} changed; its layer_sha256 is "
        f"{migrations.layer_digest(revision)} now")


@pytest.mark.parametrize("release", sorted(migrations.RELEASES_DIR.glob("*.sql")),
                         ids=lambda path: path.name)
def test_every_frozen_release_is_exactly_what_freeze_writes(release):
    # written by `python -m pgallery.migrations freeze`, never by hand: freeze's header,
    # then the layer whose digest the revision records
    revision = release.stem
    assert revision in REVISIONS
    text = release.read_text(encoding="utf-8")
    assert text.startswith(migrations.release_header(revision) + "-- ==== ")
    assert migrations.layer_digest(revision) == migrations.recorded_digest(revision)


def test_the_head_is_alembics_own_and_is_found_without_importing_alembic():
    from alembic.script import ScriptDirectory

    assert migrations.head_revision() == ScriptDirectory.from_config(
        migrations.alembic_config()).get_current_head() == REVISIONS[-1]
    # every command checks the head before it opens the database: no Alembic at start-up
    code = ("import sys; from pgallery import migrations; print(migrations.head_revision(),"
            " 'alembic' in sys.modules, 'sqlalchemy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.split() == [REVISIONS[-1], "False", "False"], result.stderr


def test_freeze_writes_the_head_layer_under_its_header_once(tmp_path):
    head = migrations.head_revision()
    frozen = migrations.freeze(head, tmp_path)
    assert frozen == tmp_path / f"{head}.sql"
    text = frozen.read_text(encoding="utf-8")
    assert text == migrations.release_header(head) + migrations.head_layer()
    with pytest.raises(DatabaseError, match="a release is frozen once"):
        migrations.freeze(head, tmp_path)


def test_freeze_refuses_a_layer_the_revision_did_not_ship(tmp_path):
    # sql/idempotent/ holds head's layer, which is not the one 0012 recorded
    with pytest.raises(DatabaseError, match="is not the layer revision 0012 shipped"):
        migrations.freeze("0012", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_freeze_command_reports_a_refusal_in_one_line():
    before = (migrations.RELEASES_DIR / "0012.sql").read_bytes()
    result = subprocess.run([sys.executable, "-m", "pgallery.migrations", "freeze", "0012"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == DatabaseError.exit_code
    assert result.stderr.count("\n") == 1 and "frozen once" in result.stderr, result.stderr
    assert (migrations.RELEASES_DIR / "0012.sql").read_bytes() == before


def test_every_routine_of_the_layer_has_derived_privileges(db_url):
    routines, _ = migrations.layer_objects(migrations.head_layer())
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.prokind, p.provolatile, p.prosecdef,"
            "       has_function_privilege('pgallery_reader', p.oid, 'EXECUTE'),"
            "       has_function_privilege('pgallery_writer', p.oid, 'EXECUTE'),"
            "       EXISTS (SELECT FROM aclexplode(p.proacl) a WHERE a.grantee = 0)"
            " FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace"
            "  AND p.proname = ANY(%s)", (sorted(routines),)).fetchall()
    assert {r[0] for r in rows} == routines
    for name, kind, volatility, definer, reader, writer, public in rows:
        assert not public, name
        assert writer == (kind == "f" or definer), name      # procedures: the definers
        assert reader == (kind == "f" and volatility in "si"), name


def test_a_security_definer_without_a_pinned_search_path_cannot_ship(db_url):
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE FUNCTION careless() RETURNS int LANGUAGE sql SECURITY DEFINER"
                     " RETURN 1")
        conn.execute("SELECT set_config('pgallery.layer_routines', 'careless', true)")
        with pytest.raises(psycopg.errors.RaiseException, match="must SET search_path"):
            conn.execute((migrations.IDEMPOTENT_DIR / "99_privileges.sql").read_text())


def test_a_second_signature_gets_the_same_privileges_as_the_first(make_database):
    url = make_database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE FUNCTION search_by_vector(q real[]) RETURNS int"
                     " LANGUAGE sql STABLE RETURN 1")
        conn.execute("SELECT set_config('pgallery.layer_routines', 'search_by_vector', true)")
        conn.execute((migrations.IDEMPOTENT_DIR / "99_privileges.sql").read_text())
        granted = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'search_by_vector'"
            " AND has_function_privilege('pgallery_reader', oid, 'EXECUTE')").fetchone()[0]
    assert granted == 2


def test_an_existing_0012_database_keeps_its_rows_and_indexes_going_to_head(make_database):
    url = make_database(migrate=False)
    migrations.upgrade(url, "0012")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT register_model('m', 4)")
        conn.execute("INSERT INTO painting (image_file) SELECT i || '.jpg'"
                     " FROM generate_series(1, 50) i")
        conn.execute("INSERT INTO painting_embedding (painting_id, model, embedding)"
                     " SELECT painting_id, 'm', array_fill(0, ARRAY[1024])::real[]::vector"
                     "   + ('[' || painting_id || ',1,2' || repeat(',0', 1021) || ']')::vector"
                     " FROM painting")
        indexes = conn.execute("SELECT indexrelid, relfilenode FROM pg_index"
                               " JOIN pg_class c ON c.oid = indexrelid"
                               " WHERE indrelid = 'painting_embedding'::regclass"
                               " ORDER BY 1").fetchall()
        before = conn.execute("SELECT image_file FROM search_by_image('7.jpg', k => 5)"
                              ).fetchall()
    migrations.upgrade(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0] == 50
        assert conn.execute("SELECT indexrelid, relfilenode FROM pg_index"
                            " JOIN pg_class c ON c.oid = indexrelid"
                            " WHERE indrelid = 'painting_embedding'::regclass"
                            " ORDER BY 1").fetchall() == indexes      # nothing rebuilt
        assert conn.execute("SELECT image_file FROM search_by_image('7.jpg', k => 5)"
                            ).fetchall() == before


def test_the_migration_sets_the_ef_search_floor_as_the_database_default(db_url):
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT '[1]'::vector")  # load pgvector so its settings are known
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(EF_SEARCH_FLOOR)


def test_functions_resolve_names_only_in_pinned_schemas(db_url):
    with psycopg.connect(db_url) as conn:
        configs = conn.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            " AND p.proname IN ('search_by_vector', 'search_by_image', 'search_by_text',"
            " 'search_hybrid')").fetchall()
    assert len(configs) == 4
    for name, config in configs:
        assert any(c.startswith("search_path=") and "pg_temp" in c for c in config), name


def test_alembic_upgrade_head_from_the_repo_root_works_on_a_given_database(make_database):
    url = make_database(migrate=False)
    env = dict(os.environ, DATABASE_URL=url)
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert migrations.current_revision(url) == migrations.head_revision()


def test_old_pgvector_is_refused_with_a_clear_message(db_url):
    with psycopg.connect(db_url) as conn:
        assert migrations._version_tuple("0.7.4") < migrations.MIN_PGVECTOR
        assert migrations.check_pgvector(conn) >= "0.8.4"


def test_a_database_at_a_folded_revision_gets_advice_not_a_traceback(make_database):
    from pgallery.errors import SchemaNotReady

    url = make_database()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0008'")
    with pytest.raises(SchemaNotReady, match="folded into the 0012 baseline"):
        migrations.upgrade(url)


def test_a_database_from_a_newer_pgallery_is_named_as_such(make_database):
    from pgallery.errors import SchemaNotReady

    url = make_database()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaNotReady, match="migrated by a newer pgallery"):
        migrations.upgrade(url)
