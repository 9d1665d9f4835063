"""Run Alembic from code, and the helpers the migrations use to apply ``sql/`` files.

The migrations in ``alembic/versions/`` apply the SQL text kept in ``sql/``; this module
finds those folders, pins the ``search_path`` the functions are created under, and checks
that the server's pgvector is new enough.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from pgallery.errors import DatabaseError, SchemaNotReady

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
ALEMBIC_DIR = PROJECT_ROOT / "alembic"
MIN_PGVECTOR = (0, 8, 4)  # iterative index scans (0.8.0) and their fixes


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def check_pgvector(conn: psycopg.Connection) -> str:
    """Fail with a clear message unless pgvector >= 0.8.4 can be installed or is installed."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions"
        " WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise DatabaseError(
            "pgvector is not available on this server: install it (the pgvector/pgvector "
            "Docker image has it), or unset DATABASE_URL to use the embedded PostgreSQL"
        )
    available, installed = row
    version = installed or available
    if _version_tuple(version) < MIN_PGVECTOR:
        wanted = ".".join(map(str, MIN_PGVECTOR))
        raise DatabaseError(
            f"pgallery needs pgvector >= {wanted}, this server has {version} "
            f"(try ALTER EXTENSION vector UPDATE, or upgrade the server's pgvector)"
        )
    return version


def pin_search_path(conn: psycopg.Connection) -> None:
    """Make the functions created next resolve names only in pgallery's and pgvector's
    schemas (they use ``SET search_path FROM CURRENT``), never in a caller's schema."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    if schema is None:
        raise DatabaseError("no schema to create pgallery's objects in (check search_path)")
    row = conn.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()
    schemas = [schema] + ([row[0].strip('"')] if row and row[0].strip('"') != schema else [])
    # pg_catalog is searched first implicitly; pg_temp goes last so a temporary object
    # can never shadow ours. Objects are created in the first schema: ours.
    path = sql.SQL(", ").join([*map(sql.Identifier, schemas), sql.Identifier("pg_temp")])
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(path))


def apply_sql_file(conn: psycopg.Connection, relative_path: str) -> None:
    """Execute one file of ``sql/`` (many statements; no parameters, so sent as written)."""
    text = (SQL_DIR / relative_path).read_text(encoding="utf-8")
    conn.execute(text)


def apply_in_migration(op, *relative_paths: str) -> None:
    """From an Alembic migration: pin the search path, then apply files of ``sql/`` in order.

        def upgrade() -> None:
            apply_in_migration(op, "functions/40_models.sql")
    """
    conn = op.get_bind().connection.driver_connection
    pin_search_path(conn)
    for path in relative_paths:
        apply_sql_file(conn, path)


def function_files() -> list[str]:
    return sorted(f"functions/{p.name}" for p in (SQL_DIR / "functions").glob("*.sql"))


def alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    if url:
        # escape % for ConfigParser interpolation
        cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return row[0] if row else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def require_current(url: str) -> None:
    """Raise SchemaNotReady unless the database is migrated to head."""
    current = current_revision(url)
    if current != head_revision():
        state = "not migrated" if current is None else f"at revision {current}"
        raise SchemaNotReady(
            f"the database is {state}; run `pgallery migrate` (or `alembic upgrade head`)"
        )
