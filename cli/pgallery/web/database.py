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

The connections are asyncio ones (psycopg's AsyncConnectionPool): a search is awaited on
the event loop that received the request, with no hand-off to a worker thread and back.
That hand-off cost ~0.35 ms of CPU a request, a third of the server's own cost, measured
with bench/benchmarks/web.py; blocking work (embedding, images) still goes to threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pgallery.database.connection import redact
from pgallery.errors import DatabaseError

log = logging.getLogger("pgallery.web")

READER = "pgallery_reader"
WRITER = "pgallery_writer"


async def _drop_to(conn: psycopg.AsyncConnection, role: str) -> bool:
    """SET ROLE role if this login may; False (rights unchanged) if it may not."""
    cur = await conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')"
                             " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                             (role,))
    may = (await cur.fetchone())[0]
    if may:
        await conn.execute(f"SET ROLE {role}")  # a constant from this module, never user text
    return bool(may)


class _MostRecentFirst(deque):
    """The pool's idle connections, handed out most recently used first.

    psycopg_pool keeps them in a deque and takes the oldest (popleft), so a lone client's
    requests go round every connection in turn, each backend with caches gone cold: at 1
    client that cost ~0.5 ms of PostgreSQL CPU a search (2.0 -> 2.4-2.8 ms, measured on the
    100k bench database over 16 connections). Taking the newest keeps a quiet server on
    one warm backend; under load every connection is busy and nothing changes."""

    def popleft(self):
        return self.pop()


class Database:
    """A pool of reader connections, plus a lazily opened writer connection; asyncio
    connections, used on the server's event loop."""

    def __init__(self, url: str, size: int = 8):
        self.url = url
        self.reader_role: str | None = None
        self._writer: psycopg.AsyncConnection | None = None
        self._writer_lock = asyncio.Lock()
        self.pool = AsyncConnectionPool(url, min_size=min(2, size), max_size=size, open=False,
                                        kwargs={"autocommit": True, "connect_timeout": 10},
                                        configure=self._configure_reader, timeout=15,
                                        name="pgallery-web")
        if isinstance(getattr(self.pool, "_pool", None), deque):   # see _MostRecentFirst
            self.pool._pool = _MostRecentFirst(self.pool._pool)

    async def _configure_reader(self, conn: psycopg.AsyncConnection) -> None:
        await register_vector_async(conn)
        if await _drop_to(conn, READER):
            self.reader_role = READER
        else:
            cur = await conn.execute("SELECT current_user")
            self.reader_role = (await cur.fetchone())[0]

    async def open(self) -> None:
        try:
            await self.pool.open(wait=True, timeout=15)
        except PoolTimeout:
            await self.pool.close()
            raise DatabaseError(f"cannot connect to {redact(self.url)}") from None
        if self.reader_role != READER:
            log.warning("the database login is not a member of %s: searching with the "
                        "login's own rights (%s)", READER, self.reader_role)

    def connection(self):
        """``async with db.connection() as conn:`` a reader connection from the pool."""
        return self.pool.connection()

    async def fetchone(self, statement: str, args=None) -> tuple | None:
        """One row of a reader statement (None when there is none)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(statement, args)
            return await cur.fetchone()

    async def fetchall(self, statement: str, args=None, row_factory=None) -> list:
        async with self.pool.connection() as conn:
            async with conn.cursor(row_factory=row_factory) as cur:
                await cur.execute(statement, args)
                return await cur.fetchall()

    async def write_prompt(self, prompt: str, vector, model: str) -> bool:
        """Cache a prompt's vector through store_prompt_embedding, as pgallery_writer.

        False when this login cannot act as the writer (nothing is written then)."""
        async with self._writer_lock:
            if self._writer is None or self._writer.closed:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                             connect_timeout=10)
                await register_vector_async(conn)
                if not await _drop_to(conn, WRITER):
                    await conn.close()
                    return False
                self._writer = conn
            try:
                await self._writer.execute("SELECT store_prompt_embedding(%s, %s, %s)",
                                           (prompt, np.asarray(vector, dtype=np.float32),
                                            model))
            except psycopg.OperationalError:
                await self._writer.close()
                raise
            return True

    async def close(self) -> None:
        await self.pool.close()
        async with self._writer_lock:
            if self._writer is not None:
                await self._writer.close()
                self._writer = None
