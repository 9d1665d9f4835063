"""The server's connections: a pool that searches as pgallery_reader, and one writer
connection for the only thing the web app writes (a text prompt's cached embedding).

Why SET ROLE and not a login of its own: `pgallery serve` must work on the same database
resolution as every command (the embedded server's superuser, or DATABASE_URL's login),
with no password to create or store. So each pooled connection logs in with that URL and
then drops to ``pgallery_reader`` (``SET ROLE``): from then on the session has exactly the
reader's rights - it runs the search functions and reads painting metadata, and cannot
write, read raw vectors or change the schema. The writer connection drops to
``pgallery_writer`` and writes only through ``store_prompt_embedding`` (on a read-scaled
server it also runs the searches that must see that write, below).

SET ROLE is a guard against the server's own mistakes, not a sandbox: a session may RESET
it. That is acceptable because no text from a request is ever part of a statement (every
value is a bound parameter). A deployment that wants the login itself restricted sets
DATABASE_URL to a member of pgallery_reader; SET ROLE then changes nothing, and prompt
caching is skipped (the text is embedded per search instead), see service.py.

Read scale (``pgallery serve --read-url URL``): the reader pool connects with that URL,
usually a libpq multi-host string over hot standbys (database/multihost.py adds
``load_balance_hosts=random`` and ``target_session_attrs=prefer-standby`` unless it says
otherwise), so its connections are spread over the standbys and a search is answered by
one of them; the writer connection keeps the primary (``target_session_attrs=read-write``).
A standby replays the primary's WAL a little later, so a prompt cached a moment ago may
not be there yet; reads that must see it go to the primary connection instead:

* a search in the same request as the write (the first search of a new prompt), and
* a search a standby answered with PGA05, the prompt not embedded (another request
  cached it, the standby has not replayed it yet): asked once more, on the primary.

(search_hybrid does not fail on a prompt it does not know: on a standby that has not
replayed it yet, a hybrid search of another request ranks by keywords alone, once.)

A pooled connection whose server went away (a standby stopped, the database restarted)
is found broken when a statement fails on it: the pool is checked (broken connections dropped and replaced,
on the standbys still up) and the statement retried once. When no read target answers at
all, searches fail at once with one line naming the targets (503), and the pool is
rebuilt when one answers again, instead of each request waiting out the pool's timeout.

The connections are asyncio ones (psycopg's AsyncConnectionPool): a search is awaited on
the event loop that received the request, with no hand-off to a worker thread and back.
That hand-off cost ~0.35 ms of CPU a request, a third of the server's own cost, measured
with bench/benchmarks/web.py; blocking work (embedding, images) still goes to threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pgallery.database.connection import redact
from pgallery.database.multihost import (parse, primary_refused, reader_conninfo, reason,
                                         targets, writer_conninfo)
from pgallery.errors import DatabaseError, PromptNotEmbedded, from_database_error

log = logging.getLogger("pgallery.web")

READER = "pgallery_reader"
WRITER = "pgallery_writer"
APPLICATION = "pgallery-serve"   # application_name, to tell the server's sessions apart
READ_LIFETIME = 600.0            # seconds a read-scaled pool keeps a connection
PROBE_TIMEOUT = 3                # seconds a probe waits for each read target (libpq's, per host)

T = TypeVar("T")


class ReadTargetsDown(DatabaseError):
    """No server the reader pool may connect to answers."""


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


class _Broken(Exception):
    """A statement failed because its pooled connection's server went away."""


async def _rows(conn: psycopg.AsyncConnection, statement: str, args, one: bool, row_factory):
    """The statement's rows (``row_factory``), or with ``one`` its first row as a tuple."""
    async with conn.cursor(row_factory=None if one else row_factory) as cur:
        await cur.execute(statement, args)
        return await cur.fetchone() if one else await cur.fetchall()


def _named(url: str, name: str) -> str:
    """The URL with application_name set, unless it sets one."""
    if "application_name" in parse(url, "the database URL"):
        return url
    return psycopg.conninfo.make_conninfo(url, application_name=name)


class Database:
    """A pool of reader connections (to ``read_url`` when given, else to ``url``), plus a
    lazily opened connection to the primary ``url`` for the prompt cache; asyncio
    connections, used on the server's event loop."""

    def __init__(self, url: str, size: int = 8, read_url: str | None = None):
        self.url = url
        self.read_url = read_url
        self.read_scaled = read_url is not None
        self.size = size
        self.read_targets = targets(read_url or url)
        self.write_target = ", ".join(targets(url))
        self._reader_url = _named(reader_conninfo(read_url) if read_url else url, APPLICATION)
        self._primary_url = _named(writer_conninfo(url) if read_url else url,
                                   APPLICATION + "-writer")
        self.reader_role: str | None = None
        self.may_write: bool | None = None      # known once the primary connection is open
        self._writer: psycopg.AsyncConnection | None = None
        self._writer_lock = asyncio.Lock()
        self._pool_lock = asyncio.Lock()
        self._down = False                      # no read target answered the last probe
        self.pool = self._new_pool()

    def _new_pool(self) -> AsyncConnectionPool:
        # read-scaled: every connection opened at once, each on a standby libpq picks at
        # random, so the load is spread before it comes (a quiet pool of 2 would hold one
        # or two standbys only); and renewed every READ_LIFETIME seconds (psycopg_pool's
        # default is an hour), so a standby back from a restart gets its share again
        pool = AsyncConnectionPool(self._reader_url,
                                   min_size=self.size if self.read_scaled else min(2, self.size),
                                   max_size=self.size, open=False,
                                   max_lifetime=READ_LIFETIME if self.read_scaled else 3600.0,
                                   kwargs={"autocommit": True, "connect_timeout": 10},
                                   configure=self._configure_reader, timeout=15,
                                   name="pgallery-web")
        if isinstance(getattr(pool, "_pool", None), deque):   # see _MostRecentFirst
            pool._pool = _MostRecentFirst(pool._pool)
        return pool

    async def _configure_reader(self, conn: psycopg.AsyncConnection) -> None:
        await register_vector_async(conn)
        if await _drop_to(conn, READER):
            self.reader_role = READER
        else:
            cur = await conn.execute("SELECT current_user")
            self.reader_role = (await cur.fetchone())[0]

    def _targets_text(self) -> str:
        return ", ".join(self.read_targets)

    async def open(self) -> None:
        try:
            await self.pool.open(wait=True, timeout=15)
        except PoolTimeout:
            await self.pool.close()
            what = (f"any read target ({self._targets_text()})" if self.read_scaled
                    else redact(self.url))
            raise DatabaseError(f"cannot connect to {what}") from None
        if self.reader_role != READER:
            log.warning("the database login is not a member of %s: searching with the "
                        "login's own rights (%s)", READER, self.reader_role)
        if self.read_scaled:    # the primary, now: a wrong URL is refused at start
            try:
                async with self._writer_lock:
                    await self._primary()
            except psycopg.OperationalError as exc:
                await self.pool.close()
                raise DatabaseError(self._primary_refused(exc)) from None

    def _primary_refused(self, exc: Exception) -> str:
        return str(primary_refused(exc, self.url))

    # -- reads ------------------------------------------------------------------------------
    def connection(self):
        """``async with db.connection() as conn:`` a reader connection from the pool (no
        retry; searches go through :meth:`fetch`)."""
        return self.pool.connection()

    async def read(self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """``await work(conn)`` on a reader connection; once more on another connection if
        that one's server went away (see the module docstring)."""
        if self._down:
            await self._recover()
        try:
            return await self._attempt(work)
        except _Broken:
            await self._after_broken()
            try:
                return await self._attempt(work)
            except _Broken as again:
                raise ReadTargetsDown(self._down_message(again.__cause__)) from None

    async def _attempt(self, work):
        async with self.pool.connection() as conn:
            try:
                return await work(conn)
            except psycopg.OperationalError as exc:
                if conn.broken and not isinstance(exc, PoolTimeout):
                    raise _Broken from exc
                raise

    async def _probe(self) -> Exception | None:
        """None if a read target accepts a connection now, else why not."""
        try:
            conn = await psycopg.AsyncConnection.connect(self._reader_url,
                                                         connect_timeout=PROBE_TIMEOUT)
        except psycopg.OperationalError as exc:
            return exc
        await conn.close()
        return None

    def _down_message(self, exc: BaseException | None) -> str:
        which = "read target" if self.read_scaled else "database"
        detail = reason(exc) if exc else "its connection broke"
        return f"no {which} answers ({self._targets_text()}): {detail}"

    async def _after_broken(self) -> None:
        """A connection broke: drop the broken ones; ReadTargetsDown if nothing answers."""
        await self.pool.check()
        failure = await self._probe()
        if failure is not None:
            self._down = True
            log.warning("%s", self._down_message(failure))
            raise ReadTargetsDown(self._down_message(failure))

    async def _recover(self) -> None:
        """After every read target was down: a new pool once one answers again."""
        async with self._pool_lock:
            if not self._down:
                return
            failure = await self._probe()
            if failure is not None:
                raise ReadTargetsDown(self._down_message(failure))
            old, self.pool = self.pool, self._new_pool()
            try:
                await self.pool.open(wait=True, timeout=15)
            except PoolTimeout:
                raise ReadTargetsDown(self._down_message(None)) from None
            self._down = False
            log.info("read targets answer again (%s)", self._targets_text())
        await old.close()

    async def fetch(self, statement: str, args=None, *, one: bool = False,
                    row_factory=dict_row, on_primary: bool = False):
        """One statement as a reader: its rows (``row_factory``), or with ``one`` its first
        row as a tuple. ``on_primary``: on the primary connection (read-scaled servers),
        for a read that must see this server's own write. A prompt a standby does not know
        yet is asked of the primary (PGA05: the module docstring)."""
        if on_primary and self.read_scaled:
            return await self._on_primary(statement, args, one, row_factory)

        try:
            return await self.read(lambda conn: _rows(conn, statement, args, one, row_factory))
        except psycopg.Error as exc:
            if self.read_scaled and isinstance(from_database_error(exc), PromptNotEmbedded):
                return await self._on_primary(statement, args, one, row_factory)
            raise

    async def fetchone(self, statement: str, args=None) -> tuple | None:
        """One row of a reader statement (None when there is none)."""
        return await self.fetch(statement, args, one=True)

    async def fetchall(self, statement: str, args=None, row_factory=None) -> list:
        return await self.fetch(statement, args, row_factory=row_factory)

    async def read_target(self) -> dict:
        """Which server a reader connection is on: host:port and whether it is a standby
        (for /readyz)."""
        async def work(conn):
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            return {"answered_by": f"{conn.info.host}:{conn.info.port}",
                    "standby": (await cur.fetchone())[0]}
        return await self.read(work)

    # -- the primary: the prompt cache, and reads of this server's own writes ---------------
    async def _primary(self) -> psycopg.AsyncConnection:
        """The primary connection (opened on first use), as pgallery_writer if the login
        may be it, else as the reader. Call with _writer_lock held."""
        if self._writer is None or self._writer.closed:
            conn = await psycopg.AsyncConnection.connect(self._primary_url, autocommit=True,
                                                         connect_timeout=10)
            await register_vector_async(conn)
            self.may_write = await _drop_to(conn, WRITER)
            if not self.may_write:
                await _drop_to(conn, READER)
            self._writer = conn
        return self._writer

    async def _on_primary(self, statement, args, one, row_factory):
        async with self._writer_lock:
            conn = await self._primary()
            try:
                return await _rows(conn, statement, args, one, row_factory)
            except psycopg.OperationalError:
                if conn.broken:
                    await conn.close()
                raise

    async def write_prompt(self, prompt: str, vector, model: str) -> bool:
        """Cache a prompt's vector through store_prompt_embedding, as pgallery_writer.

        False when this login cannot act as the writer (nothing is written then), and on a
        read-scaled server also when the primary does not answer: the search then goes by
        the prompt's vector, on a standby."""
        async with self._writer_lock:
            try:
                conn = await self._primary()
            except psycopg.OperationalError as exc:
                if not self.read_scaled:
                    raise
                log.warning("prompt not cached: %s", self._primary_refused(exc))
                return False
            if not self.may_write:
                return False
            try:
                await conn.execute("SELECT store_prompt_embedding(%s, %s, %s)",
                                   (prompt, np.asarray(vector, dtype=np.float32), model))
            except psycopg.OperationalError as exc:
                broken = conn.broken
                await conn.close()
                if self.read_scaled and broken:
                    log.warning("prompt not cached: %s", self._primary_refused(exc))
                    return False
                raise
            return True

    async def close(self) -> None:
        await self.pool.close()
        async with self._writer_lock:
            if self._writer is not None:
                await self._writer.close()
                self._writer = None
