"""A migration keeps what users built on pgallery's functions, or stops and says why.

Users build on the SQL layer: a view over search_by_vector, a GRANT EXECUTE to their own
role. A step replaces in place every routine whose signature the arriving layer keeps, so
those survive; where a step must drop or change something a user's object depends on, it
stops with one line naming the object and leaves the database exactly as it was.

Two kinds of step are exercised: the real 0012 -> 0013 (every search function's signature
changes; the model and prompt functions stay) and replace_layer driven directly with the
head layer and an edited copy of it (one body changed, one procedure removed), the shape of
a future revision that changes a function without changing its signature.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from catalog import differences, schema_of
from pgallery import migrations
from pgallery.errors import MigrationBlocked

VECTOR = "array_fill(0.5, ARRAY[1024])::real[]::vector"


@pytest.fixture
def friend(pg_server):
    """A role of the user's own (roles are the server's, so a fresh name per test)."""
    name = f"friend_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    return name


def may_execute(conn, role: str, routine: str) -> bool:
    """Whether `role` may run every routine called `routine` (and at least one exists)."""
    rows = conn.execute("SELECT has_function_privilege(%s, oid, 'EXECUTE') FROM pg_proc"
                        " WHERE proname = %s AND pronamespace = current_schema()::regnamespace",
                        (role, routine)).fetchall()
    return bool(rows) and all(row[0] for row in rows)


def edited_head_layer() -> str:
    """The head layer with search_by_vector's body changed (its signature kept) and the
    function index_tuning_status removed."""
    text = migrations.head_layer()
    changed = text.replace("'query_embedding is NULL'", "'no query_embedding given'", 1)
    assert changed != text
    # the definition runs to the end of its body, $$-quoted or BEGIN ATOMIC ... END
    removed = re.sub(r"CREATE OR REPLACE FUNCTION index_tuning_status\(\)"
                     r".*?(?:\$\$;|\bEND;)\n", "", changed, count=1, flags=re.DOTALL)
    assert removed != changed
    return removed


def widened_head_layer() -> str:
    """The head layer with a field of its composite type search_request changed (k bigint),
    so every routine that takes or returns a search_request changes with it."""
    text = migrations.head_layer()
    widened = text.replace("CREATE TYPE search_request AS (\n    k integer,",
                           "CREATE TYPE search_request AS (\n    k bigint,", 1)
    assert widened != text
    return widened


def replace(url: str, leaving: str, arriving: str) -> None:
    with psycopg.connect(url) as conn:
        migrations.pin_search_path(conn)
        migrations.replace_layer(conn, leaving, arriving)


# -- a layer that keeps search_by_vector's signature ---------------------------------------

def test_a_view_and_a_grant_survive_a_layer_that_keeps_their_signatures(make_database,
                                                                         friend):
    url = make_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT register_model('m', 1024)")
        conn.execute(f"CREATE VIEW my_top AS SELECT image_file, similarity"
                     f" FROM search_by_vector({VECTOR}, k => 3)")
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION register_model(text, integer, text),"
                             " search_by_vector TO {}").format(sql.Identifier(friend)))
        conn.execute("COMMENT ON FUNCTION register_model(text, integer, text) IS 'ours'")
        conn.execute("CREATE FUNCTION my_request() RETURNS search_request LANGUAGE sql"
                     " RETURN NULL::search_request")      # on the layer's composite type
        oid = conn.execute("SELECT 'search_by_vector'::regproc::oid").fetchone()[0]

    replace(url, migrations.head_layer(), edited_head_layer())

    with psycopg.connect(url) as conn:
        # the same function, replaced in place: the view still reads it, the grants stay
        assert conn.execute("SELECT 'search_by_vector'::regproc::oid").fetchone()[0] == oid
        assert conn.execute("SELECT to_regclass('my_top') IS NOT NULL").fetchone()[0]
        assert may_execute(conn, friend, "search_by_vector")
        assert may_execute(conn, friend, "register_model")
        assert conn.execute("SELECT obj_description('register_model'::regproc, 'pg_proc')"
                            ).fetchone()[0] == "ours"
        assert conn.execute("SELECT to_regprocedure('my_request()') IS NOT NULL"
                            ).fetchone()[0]
        # ... with the arriving body, and what the arriving layer no longer has is gone
        with pytest.raises(psycopg.Error, match="no query_embedding given"):
            conn.execute("SELECT * FROM search_by_vector(NULL)")
        conn.rollback()
        assert conn.execute("SELECT to_regprocedure('index_tuning_status()')").fetchone()[0] \
            is None


@pytest.mark.parametrize("edit", [edited_head_layer, widened_head_layer],
                         ids=["a-body-changed-a-function-removed", "a-type-changed"])
def test_replacing_in_place_gives_the_catalog_a_fresh_install_gives(make_database, friend,
                                                                    edit):
    arriving = edit()
    in_place, fresh = make_database(), make_database()
    with psycopg.connect(in_place, autocommit=True) as conn:
        conn.execute(f"CREATE VIEW my_top AS SELECT * FROM search_by_vector({VECTOR})")
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION like_pattern(text) TO {}").format(
            sql.Identifier(friend)))
    replace(in_place, migrations.head_layer(), arriving)
    with psycopg.connect(in_place, autocommit=True) as conn:   # take the user's part away
        conn.execute("DROP VIEW my_top")
        conn.execute(sql.SQL("REVOKE ALL ON FUNCTION like_pattern(text) FROM {}").format(
            sql.Identifier(friend)))
    with psycopg.connect(fresh) as conn:
        migrations.pin_search_path(conn)
        migrations.drop_layer(conn, migrations.head_layer())
        migrations.install_layer(conn, arriving)
    assert differences(schema_of(in_place), schema_of(fresh)) == []


def test_a_view_on_a_routine_the_layer_removes_stops_the_step(make_database):
    url = make_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE VIEW my_status AS SELECT * FROM index_tuning_status()")
    before = schema_of(url)
    with pytest.raises(MigrationBlocked) as blocked:
        replace(url, migrations.head_layer(), edited_head_layer())
    assert str(blocked.value).startswith(
        "view public.my_status depends on index_tuning_status(), which this upgrade to head"
        " changes: drop it, upgrade, and recreate it")
    assert differences(schema_of(url), before) == []


def test_a_function_on_a_composite_type_the_layer_changes_stops_the_step(make_database):
    url = make_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION my_request() RETURNS search_request LANGUAGE sql"
                     " RETURN NULL::search_request")
    before = schema_of(url)
    with pytest.raises(MigrationBlocked, match=r"^function public\.my_request\(\) depends "
                                               r"on type search_request, which this"):
        replace(url, migrations.head_layer(), widened_head_layer())
    assert differences(schema_of(url), before) == []


# -- the real 0012 -> 0013 ------------------------------------------------------------------

@pytest.fixture
def at_0012(make_database):
    url = make_database(migrate=False)
    migrations.upgrade(url, "0012")
    return url


def test_a_view_and_a_grant_on_unchanged_functions_survive_0012_to_0013(at_0012, friend):
    with psycopg.connect(at_0012, autocommit=True) as conn:
        conn.execute("CREATE VIEW my_prompt AS SELECT prompt_vector('a ship', 'm') AS v")
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION register_model(text, integer, text)"
                             " TO {}").format(sql.Identifier(friend)))
    migrations.upgrade(at_0012, "0013")
    with psycopg.connect(at_0012) as conn:
        assert migrations.current_revision(at_0012) == "0013"
        assert conn.execute("SELECT to_regclass('my_prompt') IS NOT NULL").fetchone()[0]
        assert may_execute(conn, friend, "register_model")


def test_a_grant_on_a_search_function_whose_signature_changes_is_carried_over(at_0012,
                                                                              friend):
    with psycopg.connect(at_0012, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION search_by_image TO {}").format(
            sql.Identifier(friend)))
        old = conn.execute("SELECT 'search_by_image'::regproc::regprocedure::text"
                           ).fetchone()[0]
    migrations.upgrade(at_0012, "0013")
    with psycopg.connect(at_0012) as conn:
        new = conn.execute("SELECT 'search_by_image'::regproc::regprocedure::text"
                           ).fetchone()[0]
        assert new != old                     # 0013 added min_similarity, order_by, page
        assert may_execute(conn, friend, "search_by_image")
        assert not may_execute(conn, friend, "search_by_text")


def test_a_view_on_a_changed_signature_stops_the_upgrade_and_changes_nothing(at_0012):
    with psycopg.connect(at_0012, autocommit=True) as conn:
        conn.execute("CREATE VIEW my_top AS SELECT * FROM search_by_image('x.jpg', 3)")
    before = schema_of(at_0012)
    with pytest.raises(MigrationBlocked) as blocked:
        migrations.upgrade(at_0012)
    message = str(blocked.value)
    assert "\n" not in message
    assert message.startswith("view public.my_top depends on search_by_image(text, integer,"
                              " ...), which this upgrade to 0013 changes: drop it, upgrade,"
                              " and recreate it")
    assert migrations.current_revision(at_0012) == "0012"
    assert differences(schema_of(at_0012), before) == []     # the view, every function
    with psycopg.connect(at_0012) as conn:
        assert conn.execute("SELECT to_regclass('painting_embedding_half')").fetchone()[0] \
            is None                                           # 0013's run-once SQL undone


def test_pgallery_migrate_says_it_in_one_line(at_0012):
    with psycopg.connect(at_0012, autocommit=True) as conn:
        conn.execute("CREATE VIEW my_top AS SELECT * FROM search_by_image('x.jpg', 3)")
    result = subprocess.run([sys.executable, "-m", "pgallery", "migrate"],
                            env=dict(os.environ, DATABASE_URL=at_0012),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == MigrationBlocked.exit_code
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: view public.my_top depends on"), \
        result.stderr
    assert migrations.current_revision(at_0012) == "0012"


# -- the real 0013 -> 0014 -----------------------------------------------------------------

def test_a_view_and_a_grant_on_search_by_vector_survive_0013_to_0014(make_database, friend):
    """0014 changes search_by_vector's body and settings but not its signature: the
    function is replaced in place, so what a user built on it stays."""
    url = make_database(revision="0013")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT register_model('m', 1024)")
        conn.execute(f"CREATE VIEW my_top AS SELECT image_file, similarity"
                     f" FROM search_by_vector({VECTOR}, k => 3)")
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION search_by_vector TO {}").format(
            sql.Identifier(friend)))
        oid = conn.execute("SELECT 'search_by_vector'::regproc::oid").fetchone()[0]
        settings_before = conn.execute("SELECT proconfig FROM pg_proc WHERE oid = %s",
                                       (oid,)).fetchone()[0]
    migrations.upgrade(url, "0014")
    with psycopg.connect(url) as conn:
        assert migrations.current_revision(url) == "0014"
        assert conn.execute("SELECT 'search_by_vector'::regproc::oid").fetchone()[0] == oid
        settings_after = conn.execute("SELECT proconfig FROM pg_proc WHERE oid = %s",
                                      (oid,)).fetchone()[0]
        assert settings_after != settings_before          # 0014's definition, in place
        assert "pgallery.query_kind=vector" in settings_after
        assert conn.execute("SELECT count(*) FROM my_top").fetchone()[0] == 0
        assert may_execute(conn, friend, "search_by_vector")


# -- and coming down -------------------------------------------------------------------------

def test_a_view_on_a_function_the_downgrade_removes_stops_it(make_database):
    url = make_database(revision="0013")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE VIEW my_status AS SELECT * FROM index_tuning_status()")
    with pytest.raises(MigrationBlocked, match=r"^view public\.my_status depends on "
                                               r"index_tuning_status\(\), which this "
                                               r"downgrade to 0012 changes"):
        migrations.downgrade(url, "0012")
    assert migrations.current_revision(url) == "0013"


def test_a_view_on_a_table_the_downgrade_drops_is_named_by_the_server(make_database):
    url = make_database(revision="0013")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE VIEW my_half AS SELECT painting_id FROM painting_embedding_half")
    with pytest.raises(MigrationBlocked, match=r"view my_half depends on table "
                                               r"painting_embedding_half\): drop it, "
                                               r"downgrade, and recreate it"):
        migrations.downgrade(url, "0012")
    assert migrations.current_revision(url) == "0013"
