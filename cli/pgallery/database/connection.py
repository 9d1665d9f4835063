"""Resolve the database URL and open connections with pgvector's types registered.

``DATABASE_URL`` (or ``--database-url``) selects any PostgreSQL with pgvector; without it
the embedded server under ``$PGALLERY_HOME`` is started on demand.
"""

from __future__ import annotations

import psycopg
from pgvector.psycopg import register_vector

from pgallery.config import Settings
from pgallery.database.embedded import EmbeddedServer
from pgallery.errors import DatabaseError


def embedded_server(settings: Settings | None = None) -> EmbeddedServer:
    settings = settings or Settings.load()
    return EmbeddedServer(settings.home)


def resolve_url(settings: Settings | None = None) -> str:
    """The URL to use: DATABASE_URL when set, else the embedded server (started if needed)."""
    settings = settings or Settings.load()
    if settings.database_url:
        return settings.database_url
    return embedded_server(settings).ensure_running()


def sqlalchemy_url(url: str) -> str:
    """The same URL with SQLAlchemy's psycopg 3 driver named (for Alembic)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable database URL>"
    if "password" in info:
        info["password"] = "***"
    return " ".join(f"{k}={v}" for k, v in info.items())


def connect(url: str | None = None, *, settings: Settings | None = None,
            autocommit: bool = False, register: bool = True) -> psycopg.Connection:
    """Open a connection; pgvector's vector type is registered when the extension exists."""
    url = url or resolve_url(settings)
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {redact(url)}: {exc}".strip()) from None
    if register:
        try:
            register_vector(conn)
        except psycopg.ProgrammingError:
            pass  # extension not created yet (before the first migration)
        if not autocommit:
            conn.rollback()
    return conn
