"""The test databases and tiers of tests/conftest.py keep their promises.

A migrated database a test gets is a clone of a template migrated once per session: it must
be exactly the database a migration makes (grants and settings on the database included,
which CREATE DATABASE ... TEMPLATE does not copy), independent of every other clone, and
at the revision asked for. A test classified as unit must not be able to reach PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from catalog import differences, schema_of
from pgallery import migrations

CONFTEST = Path(__file__).with_name("conftest.py")


def _freshly_migrated(make_database, revision: str = "head") -> str:
    url = make_database(migrate=False)
    migrations.upgrade(url, revision)
    return url


def test_a_clone_is_the_database_a_migration_makes(make_database):
    clone, fresh = make_database(), _freshly_migrated(make_database)
    assert differences(schema_of(clone), schema_of(fresh)) == []
    assert migrations.current_revision(clone) == migrations.head_revision()
    with psycopg.connect(clone) as conn:  # a new session gets the database's defaults
        ef_search = conn.execute("SHOW hnsw.ef_search").fetchone()[0]
    with psycopg.connect(fresh) as conn:
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == ef_search


def test_a_clone_at_an_older_revision_is_the_database_that_revision_makes(make_database):
    oldest = migrations.revisions()[0]
    clone = make_database(revision=oldest)
    assert migrations.current_revision(clone) == oldest
    assert differences(schema_of(clone),
                       schema_of(_freshly_migrated(make_database, oldest))) == []


def test_clones_share_no_rows_and_an_empty_database_holds_nothing(make_database):
    first, second = make_database(), make_database()
    with psycopg.connect(first) as conn:
        conn.execute("INSERT INTO painting (image_file) VALUES ('only-in-the-first.jpg')")
    with psycopg.connect(second) as conn:
        assert conn.execute("SELECT count(*) FROM painting").fetchone()[0] == 0
    assert migrations.current_revision(make_database(migrate=False)) is None


# -- the tiers ---------------------------------------------------------------------------

TIERED = '''
import subprocess, sys
import psycopg
import pytest
from pgallery.database.embedded import EmbeddedServer

def test_pure():
    assert 1 + 1 == 2

def test_connects_without_a_fixture():
    psycopg.connect("postgresql://127.0.0.1:1/x")

def test_starts_a_server_without_a_fixture(tmp_path):
    EmbeddedServer(tmp_path / "pg").ensure_running()

def test_a_cli_it_starts_cannot_reach_a_database():
    code = "import os; print(os.environ['DATABASE_URL'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "127.0.0.1:1/" in out

def test_with_the_shared_database(db_url):
    pass

@pytest.mark.database
def test_marked_as_needing_one():
    pass

@pytest.mark.slow
def test_slow():
    pass
'''


def test_the_unit_tier_is_derived_and_cannot_reach_postgresql(pytester):
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    slow: as in pyproject.toml\n")
    pytester.makepyfile(test_tiered=TIERED)
    result = pytester.runpytest_subprocess("-m", "unit", "-v", "-p", "no:xdist")
    outcomes = dict(re.findall(r"^test_tiered\.py::(\w+) (PASSED|FAILED)", result.stdout.str(),
                               re.MULTILINE))
    assert outcomes == {"test_pure": "PASSED",
                        "test_a_cli_it_starts_cannot_reach_a_database": "PASSED",
                        "test_connects_without_a_fixture": "FAILED",
                        "test_starts_a_server_without_a_fixture": "FAILED"}, result.outlines
    result.assert_outcomes(passed=2, failed=2, deselected=3)
    output = result.stdout.str()
    assert "a unit test connected to PostgreSQL" in output
    assert "a unit test started an embedded PostgreSQL server" in output
    assert "mark the test @pytest.mark.database" in output
