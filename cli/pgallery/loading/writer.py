"""Write paintings in batches: COPY into a staging table, then one merge per batch.

Each batch is one transaction (``merge_staged_paintings`` in sql/functions/), so an
interrupted load keeps every batch that committed and nothing of the one in flight.

:func:`write_batch` sends float32 arrays in binary COPY (vectors computed in process);
:func:`write_batch_staged` may also send rows already in COPY text format, their vectors as
pgvector text for the server to parse (vectors read from a file, see embeddings_file.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import psycopg

from pgallery.loading.build_memory import build_memory, graph_bytes, human
from pgallery.loading.records import PaintingRecord
from pgallery.providers.base import pad_to_column

STAGING_COLUMNS = ("ordinal", "image_file", "title", "author", "technique", "date",
                   "painting_type", "school", "timeframe", "description", "image_uri",
                   "content_hash", "embedding")
STAGING_TYPES = ["int8"] + ["text"] * 11 + ["vector"]
COPY_STAGING = f"COPY painting_staging ({', '.join(STAGING_COLUMNS)}) FROM STDIN (FORMAT binary)"
COPY_STAGING_TEXT = f"COPY painting_staging ({', '.join(STAGING_COLUMNS)}) FROM STDIN"

# COPY text format: these four characters must be escaped in a field; None is \N.
_COPY_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_TEXT_SPECIAL = ("\\", "\t", "\n", "\r")
_COPY_BLOCK_ROWS = 32     # rows joined per copy.write() (~0.7 MB of 1024-d vectors)


class VectorsRejected(Exception):
    """The server refused a row of a text COPY (a vector literal pgvector cannot read, or
    out of float4 range). Nothing of the batch was written."""


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    embeddings: int = 0

    def __iadd__(self, other: "MergeCounts") -> "MergeCounts":
        self.inserted += other.inserted
        self.updated += other.updated
        self.embeddings += other.embeddings
        return self


def register_model(conn: psycopg.Connection, model: str, dimension: int,
                   provider: str | None = None) -> None:
    """Make sure the model is known (the first one registered becomes active)."""
    with conn.transaction():
        conn.execute("SELECT register_model(%s, %s, %s)", (model, dimension, provider))


def write_batch(conn: psycopg.Connection, model: str, records: list[PaintingRecord],
                first_ordinal: int = 0) -> MergeCounts:
    """Stage and merge one batch in its own transaction; returns what changed."""
    if not records:
        return MergeCounts()
    return write_batch_staged(
        conn, model, list(enumerate(records, start=first_ordinal)), [])


def write_batch_staged(conn: psycopg.Connection, model: str,
                       records: list[tuple[int, PaintingRecord]], text_lines: list[str],
                       before_merge: Callable[[], None] | None = None) -> MergeCounts:
    """Stage and merge one batch in its own transaction: ``records`` (ordinal, record) in
    binary COPY, and ``text_lines`` (staging_text_line) in a text COPY. Raises
    VectorsRejected, with nothing written, if the server refuses a text line's data.

    ``before_merge`` is called between the COPY and the merge (a loader staging on two
    connections waits there for the previous batch's commit; if it raises, nothing of
    this batch is written)."""
    if not records and not text_lines:
        if before_merge:
            before_merge()
        return MergeCounts()
    with conn.transaction():
        conn.execute("SELECT create_painting_staging()")
        with conn.cursor() as cur:
            if records:
                with cur.copy(COPY_STAGING) as copy:
                    copy.set_types(STAGING_TYPES)
                    for ordinal, r in records:
                        vector = None if r.embedding is None else pad_to_column(r.embedding)
                        copy.write_row((
                            ordinal, r.image_file, r.title, r.author, r.technique,
                            r.date, r.painting_type, r.school, r.timeframe, r.description,
                            r.image_uri, r.content_hash, vector,
                        ))
            if text_lines:
                try:
                    with cur.copy(COPY_STAGING_TEXT) as copy:
                        for start in range(0, len(text_lines), _COPY_BLOCK_ROWS):
                            copy.write("".join(text_lines[start:start + _COPY_BLOCK_ROWS]))
                except psycopg.DataError as exc:   # SQLSTATE class 22
                    raise VectorsRejected(str(exc).splitlines()[0]) from exc
            if before_merge:
                before_merge()
            cur.execute("SELECT * FROM merge_staged_paintings(%s)", (model,))
            inserted, updated, embeddings = cur.fetchone()
    return MergeCounts(inserted, updated, embeddings)


def _copy_text_field(value: str | None) -> str:
    if value is None:
        return "\\N"
    if any(c in value for c in _COPY_TEXT_SPECIAL):
        return value.translate(_COPY_TEXT_ESCAPES)
    return value


def staging_text_line(ordinal: int, r: PaintingRecord, vector_literal: str | None) -> str:
    """One staging row in COPY text format. ``vector_literal``: pgvector text of exactly
    1024 dimensions made only of ``[]-+0-9.eE,`` and spaces (nothing to escape), or None."""
    return "\t".join((
        str(ordinal), _copy_text_field(r.image_file), _copy_text_field(r.title),
        _copy_text_field(r.author), _copy_text_field(r.technique), _copy_text_field(r.date),
        _copy_text_field(r.painting_type), _copy_text_field(r.school),
        _copy_text_field(r.timeframe), _copy_text_field(r.description),
        _copy_text_field(r.image_uri), _copy_text_field(r.content_hash),
        "\\N" if vector_literal is None else vector_literal,
    )) + "\n"


def record_failures(conn: psycopg.Connection, model: str,
                    failures: list[tuple[str, str | None, str, str]]) -> None:
    """Remember images that could not be embedded: (image_file, image_uri, code, message)."""
    if not failures:
        return
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO embedding_failure (image_file, model, image_uri, code, message)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (image_file, model) DO UPDATE SET image_uri = excluded.image_uri,"
                " code = excluded.code, message = excluded.message, failed_at = now()",
                [(f, model, uri, code, msg) for f, uri, code, msg in failures],
            )


# A load of at least this many rows that also at least doubles the table builds the HNSW
# index afterwards instead of inserting every row into the graph: CREATE INDEX with the
# server's maintenance_work_mem and parallel workers is many times faster than row-by-row
# graph inserts (bench/README.md, "Loading").
BULK_LOAD_ROWS = 5000

HNSW_INDEXES = """
SELECT c.relname, pg_get_indexdef(c.oid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = 'painting_embedding'::regclass AND am.amname = 'hnsw'
"""


@contextmanager
def _autocommit(conn: psycopg.Connection, *, end_open_transaction: bool = False
                ) -> Iterator[psycopg.Connection]:
    """Each statement its own transaction (index builds, ANALYZE, ALTER DATABASE), the
    connection's mode put back after. ``end_open_transaction``: roll back a transaction a
    failed load left open first (else switching mode raises)."""
    if end_open_transaction and \
            conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    previous = conn.autocommit
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.autocommit = previous


def defer_hnsw_indexes(conn: psycopg.Connection, incoming_rows: int) -> list[str]:
    """Before a bulk load: drop painting_embedding's HNSW indexes and return their
    definitions for restore_indexes(). Nothing is dropped for a small load, or when the
    role may not drop them (the index then stays and is maintained row by row)."""
    if incoming_rows < BULK_LOAD_ROWS:
        return []
    with _autocommit(conn):
        existing = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
        if incoming_rows < existing:
            return []
        definitions = []
        for name, definition in conn.execute(HNSW_INDEXES).fetchall():
            try:
                conn.execute(f'DROP INDEX "{name}"')
            except psycopg.errors.InsufficientPrivilege:
                continue
            definitions.append(definition)
        return definitions


def restore_indexes(conn: psycopg.Connection, definitions: list[str]) -> list[str]:
    """Recreate the indexes defer_hnsw_indexes() dropped (with their original definitions),
    with room for the whole graph where that is safe (build_memory.py). Returns notes for
    the user: the memory the build was given, or that the graph did not fit and how to
    give it more."""
    if not definitions:
        return []
    with _autocommit(conn, end_open_transaction=True):
        return _build_with_memory(conn, definitions)


def restore_missing_hnsw(conn: psycopg.Connection) -> list[str]:
    """After a load: build the HNSW index if an interrupted bulk load left it dropped
    (restore_hnsw_index() in sql/functions/), with the memory restore_indexes gives.
    Returns notes for the user (none when the index is there)."""
    with _autocommit(conn, end_open_transaction=True):
        if conn.execute(HNSW_INDEXES).fetchone() is not None:
            return []
        try:
            notes = _build_with_memory(conn, ["CALL restore_hnsw_index()"])
        except psycopg.errors.UndefinedFunction:    # a database not migrated to 0012
            return []
    return ["painting_embedding had no HNSW index (an interrupted bulk load?): rebuilt it",
            *notes]


def _build_with_memory(conn: psycopg.Connection, statements: list[str]) -> list[str]:
    """Run index builds (the connection in autocommit) with build_memory's maintenance_work_mem, putting
    the session's own back after; returns the notes restore_indexes describes."""
    notes: list[str] = []
    spilled: list[str] = []

    def on_notice(diag):
        if "no longer fits into maintenance_work_mem" in (diag.message_primary or ""):
            spilled.append(diag.message_primary)

    vectors = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
    memory = build_memory(conn, vectors)
    before = conn.execute("SELECT current_setting('maintenance_work_mem')").fetchone()[0]
    if memory:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)",
                     (f"{memory // 1024}kB",))
        notes.append(f"the HNSW index was built with maintenance_work_mem {human(memory)} "
                     f"(its graph of {vectors:,} vectors needs about "
                     f"{human(graph_bytes(vectors))})")
    conn.add_notice_handler(on_notice)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.remove_notice_handler(on_notice)
        if memory:
            conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (before,))
    if spilled:
        setting = conn.execute("SHOW maintenance_work_mem").fetchone()[0]
        needed = human(graph_bytes(vectors))
        notes.append(
            f"the HNSW graph did not fit maintenance_work_mem ({setting}): pgvector built "
            f"it on disk, several times slower ({spilled[0]}). Next time give the build "
            f"about {needed}, e.g. PGOPTIONS='-c maintenance_work_mem={needed}' in front "
            "of the command")
    return notes


def finish_load(conn: psycopg.Connection) -> bool:
    """After a bulk load: refresh planner statistics, and rebuild the IVFFlat index if there
    is one (IVFFlat's lists are trained on the data it was built from). True if rebuilt."""
    with _autocommit(conn):
        conn.execute("ANALYZE painting")
        conn.execute("ANALYZE painting_embedding")
        exists = conn.execute(
            "SELECT to_regclass('painting_embedding_ivfflat') IS NOT NULL").fetchone()[0]
        if exists:
            conn.execute("CALL build_ivfflat_index()")
        return bool(exists)


def tune_search_defaults(conn: psycopg.Connection) -> int | None:
    """After a load (and ANALYZE): size the database's default hnsw.ef_search to the
    collection (sql/functions/70_search_defaults.sql). Returns the new default if it
    differs from the one this session started with, else None."""
    with _autocommit(conn):
        try:
            new, before = conn.execute(
                "SELECT tune_search_defaults(), current_setting('hnsw.ef_search', true)"
            ).fetchone()
        except psycopg.errors.UndefinedFunction:   # a database not migrated to 0011
            return None
    return new if new is not None and str(new) != before else None


# The smallest magnitude that rounds to infinity in float32 (halfway between its largest
# finite value, (2 - 2**-23) * 2**127, and 2**128; the tie rounds to even, the infinity).
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


def parse_vector_text(text: str) -> np.ndarray:
    """'[0.1, 0.2, ...]' (JSON-style list) -> float32 array. Raises ValueError."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError("not a [...] list of numbers")
    body = body[1:-1]
    if not body.strip():
        raise ValueError("empty vector")
    try:
        exact = np.array(body.split(","), dtype=np.float64)
    except ValueError:
        raise ValueError("holds something that is not a number") from None
    # A number beyond float32's range becomes infinity (rejected as not finite, as the
    # server's own parser would), said here rather than left to an overflowing cast.
    overflow = np.abs(exact) >= FLOAT32_OVERFLOW
    exact[overflow] = np.copysign(np.inf, exact[overflow])
    return exact.astype(np.float32)
