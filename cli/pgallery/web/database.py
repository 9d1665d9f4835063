"""The server's connections: a pool that searches as pgallery_reader, and one writer
connection for the only thing the web app writes (a text prompt's cached embedding).

Why SET ROLE and not a login of its own: `pgallery serve` must work on the same database
resolution as every command (the embedded server's superuser, or DATABASE_URL's login),
with no password to create or store. So each pooled connection logs in with that URL and
then drops to ``pgallery_reader`` (``SET ROLE``): from then on the session has exactly the
reader's rights - it runs the search functions and reads painting metadata, and cannot
write, read raw vectors or change the schema. The writer connection drops to
``pgallery_writer`` and only ever calls ``store_prompt_embedding``.

SET ROLE is a guard against the server's own mistakes, not a sandbox: a session may RESET
it. That is acceptable because no text from a request is ever part of a statement (every
value is a bound parameter). A deployment that wants the login itself restricted sets
DATABASE_URL to a member of pgallery_reader; SET ROLE then changes nothing, and prompt
caching is skipped (the text is embedded per search instead), see service.py.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from pgvector.psycopg import register_vector
from psycopg_pool import ConnectionPool, PoolTimeout

from pgallery.database.connection import redact
from pgallery.errors import DatabaseError

log = logging.getLogger("pgallery.web")

READER = "pgallery_reader"
WRITER = "pgallery_writer"


def _drop_to(conn: psycopg.Connection, role: str) -> bool:
    """SET ROLE role if this login may; False (rights unchanged) if it may not."""
    may = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')"
                       " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                       (role,)).fetchone()[0]
    if may:
        conn.execute(f"SET ROLE {role}")  # a constant from this module, never user text
    return bool(may)


class Database:
    """A pool of reader connections, plus a lazily opened writer connection."""

    def __init__(self, url: str, size: int = 8):
        self.url = url
        self.reader_role: str | None = None
        self._writer: psycopg.Connection | None = None
        self._writer_lock = threading.Lock()
        self.pool = ConnectionPool(url, min_size=min(2, size), max_size=size, open=False,
                                   kwargs={"autocommit": True, "connect_timeout": 10},
                                   configure=self._configure_reader, timeout=15,
                                   name="pgallery-web")

    def _configure_reader(self, conn: psycopg.Connection) -> None:
        register_vector(conn)
        if _drop_to(conn, READER):
            self.reader_role = READER
        else:
            self.reader_role = conn.execute("SELECT current_user").fetchone()[0]

    def open(self) -> None:
        try:
            self.pool.open(wait=True, timeout=15)
        except PoolTimeout:
            self.pool.close()
            raise DatabaseError(f"cannot connect to {redact(self.url)}") from None
        if self.reader_role != READER:
            log.warning("the database login is not a member of %s: searching with the "
                        "login's own rights (%s)", READER, self.reader_role)

    def connection(self):
        """``with db.connection() as conn:`` a reader connection from the pool."""
        return self.pool.connection()

    def write_prompt(self, prompt: str, vector, model: str) -> bool:
        """Cache a prompt's vector through store_prompt_embedding, as pgallery_writer.

        False when this login cannot act as the writer (nothing is written then)."""
        import numpy as np

        with self._writer_lock:
            if self._writer is None or self._writer.closed:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                register_vector(conn)
                if not _drop_to(conn, WRITER):
                    conn.close()
                    return False
                self._writer = conn
            try:
                self._writer.execute("SELECT store_prompt_embedding(%s, %s, %s)",
                                     (prompt, np.asarray(vector, dtype=np.float32), model))
            except psycopg.OperationalError:
                self._writer.close()
                raise
            return True

    def close(self) -> None:
        self.pool.close()
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
