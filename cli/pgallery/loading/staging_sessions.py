"""Write a file's batches on two sessions that take turns, merged in file order.

The server parses a batch's vectors during its COPY (most of the batch's server time),
then merges it. With two sessions, batch k+1's COPY runs while batch k merges, so the
server works on two cores; merges still run one at a time, in file order (batch k+1
merges after batch k committed), so the result is the same as one session's.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
from pgvector.psycopg import register_vector

from pgallery.loading.embedding_rows import CopyChunk
from pgallery.loading.records import RejectedRow
from pgallery.loading.writer import MergeCounts, VectorsRejected, write_batch_staged


class _Cancelled(Exception):
    """A batch abandoned because the load stopped (its transaction rolled back)."""


def other_session(conn) -> psycopg.Connection | None:
    """A second session as the same user on the same database, with the same search path;
    None if there cannot be one (the load then uses ``conn`` alone)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return None
    try:
        extra = {"password": conn.info.password} if conn.info.password else {}
        other = psycopg.connect(conn.info.dsn, connect_timeout=10, **extra)
    except psycopg.Error:
        return None
    try:
        register_vector(other)
        same = "SELECT current_user, session_user, current_setting('search_path')"
        if other.execute(same).fetchone() != conn.execute(same).fetchone():
            raise psycopg.ProgrammingError("a different session")
        return other
    except psycopg.Error:
        other.close()
        return None
    finally:
        for c in (conn, other):
            if c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                c.rollback()


def _write_chunk(conn, model: str, chunk: CopyChunk, previous: Future | None,
                 cancel: threading.Event) -> tuple[MergeCounts, list[RejectedRow]]:
    def before_merge():
        if previous is not None:
            previous.result()           # wait for its commit; re-raises its failure
        if cancel.is_set():
            raise _Cancelled()

    try:
        return (write_batch_staged(conn, model, chunk.parsed(), chunk.text_lines(),
                                   before_merge), chunk.rejected())
    except VectorsRejected:
        # a vector the cheap checks let through and the server refused (say '1.2.3'):
        # check this batch exactly in Python, load its good rows
        records, rejected = chunk.recheck()
        return (write_batch_staged(conn, model, list(enumerate(records)), [], before_merge),
                rejected)


def write_in_order(conns: list, model: str, chunks: Iterator[CopyChunk]):
    """Write chunk k on conns[k % len(conns)] (each connection in its own thread); yield
    (merge counts, rejected rows, chunk) in file order. The first failure is raised and
    the batches after it roll back."""
    workers = [ThreadPoolExecutor(1, thread_name_prefix=f"pgallery-load-{i}")
               for i in range(len(conns))]
    cancel = threading.Event()
    in_flight: deque = deque()
    chunks = iter(chunks)
    try:
        for k in itertools.count():
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception:
                # the input failed: the batches read before it are written, as when
                # batches were written one after the other, then the error is raised
                while in_flight:
                    future, done = in_flight.popleft()
                    yield *future.result(), done
                raise
            while len(in_flight) >= len(conns):
                future, done = in_flight.popleft()
                yield *future.result(), done
            previous = in_flight[-1][0] if in_flight else None
            i = k % len(conns)
            in_flight.append((workers[i].submit(_write_chunk, conns[i], model, chunk,
                                                previous, cancel), chunk))
        while in_flight:
            future, done = in_flight.popleft()
            yield *future.result(), done
    finally:
        cancel.set()
        for worker in workers:
            worker.shutdown(wait=True)
