"""Read a file of precomputed embeddings (the reference pipeline's output).

Two layouts, both tab-separated with a header:

- lower-case: ``image_file, description, author, title, technique, type, timeframe, vector``
  (extra columns such as date or school are used when present);
- SemArt's nine upper-case columns ``IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE, TECHNIQUE, DATE,
  TYPE, SCHOOL, TIMEFRAME`` plus a ``VECTOR`` (or ``vector``) column.

``vector`` is a JSON-style list of floats. Rows whose vector is malformed, of the wrong
dimension, non-finite or all zeros are rejected with a reason; every other row is loaded.
A Parquet file with the same columns is read by embeddings_parquet.py; load_embeddings_file
takes either.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from pgvector.psycopg import register_vector

from pgallery.errors import ArgError, MismatchedDimension
from pgallery.loading.records import PaintingRecord, RejectedRow, clean
from pgallery.loading.summary import LoadSummary, Progress
from pgallery.loading.writer import (MergeCounts, VectorsRejected, defer_hnsw_indexes,
                                     finish_load, parse_vector_text, register_model,
                                     restore_indexes, restore_missing_hnsw, staging_text_line,
                                     tune_search_defaults, write_batch_staged)
from pgallery.providers.base import COLUMN_DIMENSION

# input column (lower-cased) -> PaintingRecord field
COLUMN_FIELDS = {
    "image_file": "image_file", "description": "description", "author": "author",
    "title": "title", "technique": "technique", "date": "date", "type": "painting_type",
    "painting_type": "painting_type", "school": "school", "timeframe": "timeframe",
    "image_uri": "image_uri", "image_url": "image_uri", "url": "image_uri",
}
REQUIRED = ("image_file", "vector")

# Why a row is not loaded; the Parquet reader (embeddings_parquet.py) gives the same reasons.
NO_IMAGE_FILE = "no image_file"
NOT_FINITE = "vector holds NaN or infinity"
ALL_ZEROS = "vector is all zeros"


def wrong_dimension(length: int, dimension: int) -> str:
    return f"vector has {length} dimensions, expected {dimension}"


@dataclass
class Chunk:
    records: list[PaintingRecord]
    rejected: list[RejectedRow]
    first_line: int


def _next_frame(reader) -> tuple[pd.DataFrame | None, list[RejectedRow]]:
    """The next chunk, and the lines pandas skipped for a wrong number of fields."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = next(reader, None)
    rejected = []
    for w in caught:
        for match in re.finditer(r"Skipping line (\d+): (.*)", str(w.message)):
            rejected.append(RejectedRow(f"line {match[1]}", None, match[2].strip()))
    return frame, rejected


def _open_frames(path: Path, chunk_rows: int):
    """The file's first frame, the rows skipped before it, and the frames after it."""
    if not os.path.isfile(path):  # False, not an OSError, for a name too long to exist
        raise ArgError(f"{str(path):.200}: no such file")
    for encoding in ("utf-8", "cp1252"):
        try:
            reader = pd.read_csv(
                path, sep="\t", dtype=str, keep_default_na=False, encoding=encoding,
                chunksize=chunk_rows, quoting=csv.QUOTE_NONE, on_bad_lines="warn",
                engine="c",
            )
            first, skipped = _next_frame(reader)
            return first, skipped, reader
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:   # 0 bytes, or only blank lines: not even a header
            raise ArgError(f"{str(path):.200}: the file is empty (expected a header line "
                           "with image_file ... vector, then one row per painting)") from None
        except OSError as exc:      # unreadable (permissions, a device error)
            raise ArgError(f"{str(path):.200}: cannot read ({exc.strerror or exc})") from None
    raise ArgError(f"{path}: neither UTF-8 nor cp1252 text")


def check_columns(columns: list[str], path: Path) -> dict[str, str]:
    """{lower-cased name: the file's column}; ArgError naming what is missing."""
    lowered = {c.strip().lower(): c for c in columns}
    missing = [c for c in REQUIRED if c not in lowered]
    if missing:
        raise ArgError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns)}. "
            "Expected columns image_file, ..., vector"
        )
    return lowered


def field_map(columns: dict[str, str]) -> dict[str, str]:
    """{the file's column: PaintingRecord field} for the columns check_columns found."""
    return {src: COLUMN_FIELDS[name] for name, src in columns.items() if name in COLUMN_FIELDS}


def read_embeddings_file(path: Path, dimension: int | None = None,
                         chunk_rows: int = 2000) -> Iterator[Chunk]:
    """Yield chunks of validated records (and the rows rejected, with reasons).

    ``dimension``: the expected vector length; None = take it from the first good row.
    """
    path = Path(path)
    frame, skipped, rest = _open_frames(path, chunk_rows)
    if frame is None:
        if skipped:
            yield Chunk([], skipped, 2)
        return
    columns, fields = _fields(frame, path)
    for frame, skipped, line in _chunks(frame, skipped, rest):
        records, rejected = [], skipped
        for row_number, row in enumerate(frame.to_dict("records")):
            outcome, parsed = _check_row(row, columns, fields, f"line {line + row_number}",
                                         dimension)
            if dimension is None and parsed is not None:
                dimension = parsed     # the first parseable vector's, even if rejected
            if isinstance(outcome, RejectedRow):
                rejected.append(outcome)
            else:
                records.append(outcome)
        yield Chunk(records, rejected, line)


def _chunks(frame, skipped, rest):
    """(frame, lines pandas skipped, the frame's first line number) for every chunk."""
    # Line numbers are exact until pandas skips a malformed line; after that they count
    # the rows that parsed (pandas reports the skipped lines' own numbers).
    line = 2  # the header is line 1
    while frame is not None:
        yield frame, skipped, line
        line += len(frame)
        frame, skipped = _next_frame(rest)


def _fields(frame, path: Path) -> tuple[dict[str, str], dict[str, str]]:
    columns = check_columns(list(frame.columns), path)
    return columns, field_map(columns)


def _check_row(row: dict, columns: dict[str, str], fields: dict[str, str], where: str,
               dimension: int | None) -> tuple[PaintingRecord | RejectedRow, int | None]:
    """One input row, checked exactly (the vector parsed in Python): the record or why not,
    and the parsed vector's length (None if it did not parse).

    ``dimension`` None: any length is accepted (the caller takes the first parsed one)."""
    image_file = clean(row.get(columns["image_file"]))
    if not image_file:
        return RejectedRow(where, None, NO_IMAGE_FILE), None
    try:
        vector = parse_vector_text(row[columns["vector"]])
    except ValueError as exc:
        return RejectedRow(where, image_file, f"bad vector: {exc}"), None
    if dimension is not None and len(vector) != dimension:
        return RejectedRow(where, image_file, wrong_dimension(len(vector), dimension)), \
            len(vector)
    if not np.isfinite(vector).all():
        return RejectedRow(where, image_file, NOT_FINITE), len(vector)
    if not vector.any():
        return RejectedRow(where, image_file, ALL_ZEROS), len(vector)
    return _record(row, fields, image_file, vector), len(vector)


def _record(row: dict, fields: dict[str, str], image_file: str,
            vector: np.ndarray | None) -> PaintingRecord:
    values = {field: clean(row.get(src)) for src, field in fields.items()}
    values["image_file"] = image_file
    return PaintingRecord(**values, embedding=vector)


def vector_dimension(path: Path) -> int | None:
    """The dimension of the first parseable vector in the file (to register the model)."""
    for chunk in read_embeddings_file(path, chunk_rows=50):
        for record in chunk.records:
            return len(record.embedding)
    return None


def count_data_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def load_embeddings_file(conn, path: Path, *, model: str, batch_size: int = 2000,
                         progress: Progress | None = None) -> LoadSummary:
    """Load a precomputed-embeddings file (tab-separated, or Parquet: see
    embeddings_parquet.py): validate, COPY, merge per batch, ANALYZE.

    A background thread reads and checks the file one batch ahead of the database, which
    parses most vectors itself (text COPY, see read_for_copy); batches are staged on two
    sessions in turn and merged one at a time in file order (see _write_in_order). What is
    loaded and rejected, and why, is exactly what read_embeddings_file says."""
    from pgallery.loading import embeddings_parquet

    path = Path(path)
    parquet = embeddings_parquet.is_parquet(path)
    # the two formats' readers: the first vector's length, the row count, the batches
    probe, count_rows, read = (
        (embeddings_parquet.vector_dimension, embeddings_parquet.row_count,
         embeddings_parquet.read_parquet_for_copy) if parquet else
        (vector_dimension, count_data_lines, read_for_copy))
    dimension = probe(path)
    summary = LoadSummary(model=model)
    if dimension is None:
        # nothing parseable: still report every row's reason
        if parquet:
            for chunk in read(path, None, batch_size):
                summary.seen += len(chunk.entries)
                summary.rejected += chunk.rejected()
            return summary
        for chunk in read_embeddings_file(path, chunk_rows=batch_size):
            summary.seen += len(chunk.records) + len(chunk.rejected)
            summary.rejected += chunk.rejected
        return summary
    if dimension > COLUMN_DIMENSION:
        raise MismatchedDimension(
            f"{str(path):.200}: its vectors have {dimension} dimensions; pgallery's column "
            f"holds at most {COLUMN_DIMENSION} (a model of up to {COLUMN_DIMENSION} "
            "dimensions is zero-padded to it)")
    register_model(conn, model, dimension, provider="file")
    lines = count_rows(path)
    if progress:
        progress.start(lines)
    # A bulk load builds the HNSW index once at the end (restored even if the load fails).
    deferred = defer_hnsw_indexes(conn, lines)
    try:
        # Parquet's vectors are already numbers: checked in numpy, sent in binary COPY
        chunks = read(path, dimension, batch_size)
        other = _other_session(conn) if STAGING_SESSIONS > 1 else None
        try:
            with prefetched(chunks, help=CopyChunk.parse_one if CLIENT_PARSES else None
                            ) as ready:
                for merged, rejected, chunk in _write_in_order(
                        [conn] if other is None else [conn, other], model, ready):
                    summary.seen += len(chunk.entries) + len(chunk.skipped)
                    summary.rejected += rejected
                    summary.merged += merged
                    if progress:
                        progress.advance(len(chunk.entries) + len(chunk.skipped))
        finally:
            if other is not None:
                other.close()
    finally:
        summary.notes += restore_indexes(conn, deferred)
    summary.notes += restore_missing_hnsw(conn)
    summary.ivfflat_rebuilt = finish_load(conn)
    summary.ef_search_default = tune_search_defaults(conn)
    return summary


# -- writing: two sessions take turns ----------------------------------------------------
#
# The server parses a batch's vectors during its COPY (most of the batch's server time),
# then merges it. With two sessions, batch k+1's COPY runs while batch k merges, so the
# server works on two cores; merges still run one at a time, in file order (batch k+1
# merges after batch k committed), so the result is the same as one session's.

STAGING_SESSIONS = 2      # 1: one session, batches strictly one after the other
CLIENT_PARSES = True      # the reader thread parses vectors while it waits (CopyChunk.parse_one)


class _Cancelled(Exception):
    """A batch abandoned because the load stopped (its transaction rolled back)."""


def _other_session(conn) -> psycopg.Connection | None:
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


def _write_chunk(conn, model: str, chunk: "CopyChunk", previous: Future | None,
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


def _write_in_order(conns: list, model: str, chunks: Iterator["CopyChunk"]):
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


# -- the fast path: the server parses the vectors ------------------------------------------
#
# Parsing 1024 numbers of text per row is most of a load's work, and costs about the same
# wherever it runs (~0.4-0.5 us a number: a correctly rounded conversion of a 17-digit
# decimal, numpy in Python or strtof in pgvector's vector_in). What pays is where: in
# Python it serialises with reading the file; sent as text in a text-format COPY, the
# server parses it in another process (two, with two sessions) while Python reads on. So a
# vector goes to the server as it was read whenever cheap C-speed checks prove the exact
# Python path (_check_row) would accept it:
#
# - only the characters of decimal numbers, commas and spaces between '[' and ']' (no
#   NaN/inf spelling, hex or anything else strtof reads and numpy does not);
# - as many commas as the dimension asks for;
# - one element that is surely not zero in float32: a plain decimal of at least 1e-38, or
#   a mantissa >= 1 with an exponent >= -37 (smaller ones underflow to 0 and may make the
#   vector all zeros, which pgvector accepts).
#
# While the reader thread waits for the database to take the next batch, it parses that
# batch's vectors itself (CopyChunk.parse_one): those rows go in binary COPY.
# Any row failing a check takes the exact path (same reason as before, or a literal
# printed from the parsed floats). What the checks let through and the server refuses
# ('1.2.3', '1,,2', out of float4 range) fails the batch's COPY: that batch is redone on
# the exact path. pgvector reads each number with strtof, numpy via double then float32;
# they agree except for decimals within 1e-17 of a float32 rounding midpoint (more
# digits than any float writer prints), where strtof's is the correctly rounded one.

_VECTOR_CHARS = b"-+0123456789.eE, "
_SURELY_NONZERO = re.compile(
    r"(?:^|[ ,\[])[-+]?(?:"
    r"0*[1-9][0-9]*(?:\.[0-9]*)?(?:[eE](?:\+?[0-9]+|-0*(?:[0-9]|[12][0-9]|3[0-7])))?"
    r"|0*\.0{0,37}[1-9][0-9]*"
    r")(?=[ ,\]])")


def fast_vector_literal(text, dimension: int) -> str | None:
    """The row's vector as pgvector text zero-padded to the column, if the checks above
    prove _check_row would accept it; None: check it exactly."""
    if not isinstance(text, str) or dimension > COLUMN_DIMENSION:
        return None
    body = text.strip()
    if len(body) < 3 or body[0] != "[" or body[-1] != "]":
        return None
    try:
        raw = body.encode("ascii")
    except UnicodeEncodeError:
        return None
    if raw.translate(None, _VECTOR_CHARS) != b"[]" or raw.count(b",") + 1 != dimension:
        return None
    if not _SURELY_NONZERO.search(body):
        return None
    if dimension < COLUMN_DIMENSION:     # pad_to_column, textually
        body = body[:-1] + ",0" * (COLUMN_DIMENSION - dimension) + "]"
    return body


@dataclass
class StagedRow:
    """A record on its way to the staging table."""

    record: PaintingRecord
    ordinal: int
    where: str
    row: dict | None     # the input row while the server is to parse its vector, else None
    line: str | None     # ... and its COPY text line (the record has no embedding yet)


@dataclass
class CopyChunk:
    """One batch for write_batch_staged, and what recheck() needs to redo it exactly."""

    entries: list[StagedRow | RejectedRow]     # in file order
    skipped: list[RejectedRow]            # lines pandas could not split into the columns
    columns: dict[str, str]
    fields: dict[str, str]
    dimension: int
    _next_unparsed: int = 0

    def parsed(self) -> list[tuple[int, PaintingRecord]]:
        """The records whose vectors are parsed (binary COPY), with their ordinals."""
        return [(e.ordinal, e.record) for e in self.entries
                if isinstance(e, StagedRow) and e.line is None]

    def text_lines(self) -> list[str]:
        """The COPY text lines of the records whose vectors the server parses."""
        return [e.line for e in self.entries if isinstance(e, StagedRow) and e.line is not None]

    def rejected(self) -> list[RejectedRow]:
        return self.skipped + [e for e in self.entries if isinstance(e, RejectedRow)]

    def _check(self, entry: StagedRow) -> PaintingRecord | RejectedRow:
        return _check_row(entry.row, self.columns, self.fields, entry.where, self.dimension)[0]

    def parse_one(self):
        """Parse the next vector left to the server in Python instead; returns a callable
        that stores the result in the chunk (None: nothing left). While the database works
        on the previous batch, the reader thread does this for the next one, so each side
        parses a share of the vectors and neither waits for the other."""
        while self._next_unparsed < len(self.entries):
            i = self._next_unparsed
            self._next_unparsed += 1
            entry = self.entries[i]
            if isinstance(entry, StagedRow) and entry.row is not None:
                outcome = self._check(entry)

                def store():
                    if isinstance(outcome, RejectedRow):
                        self.entries[i] = outcome
                    else:
                        entry.record, entry.row, entry.line = outcome, None, None
                return store
        return None

    def recheck(self) -> tuple[list[PaintingRecord], list[RejectedRow]]:
        """Every row checked on the exact path: (records with their vectors, rejections)."""
        records, rejected = [], list(self.skipped)
        for entry in self.entries:
            outcome = entry
            if isinstance(entry, StagedRow):
                outcome = entry.record if entry.row is None else self._check(entry)
            (rejected if isinstance(outcome, RejectedRow) else records).append(outcome)
        return records, rejected


def read_for_copy(path: Path, dimension: int, chunk_rows: int = 2000) -> Iterator[CopyChunk]:
    """Like read_embeddings_file, but a record whose vector passes the cheap checks gets a
    COPY text line instead of a parsed vector."""
    path = Path(path)
    frame, skipped, rest = _open_frames(path, chunk_rows)
    if frame is None:
        if skipped:
            yield CopyChunk([], skipped, {}, {}, dimension)
        return
    columns, fields = _fields(frame, path)
    image_col, vector_col = columns["image_file"], columns["vector"]
    ordinal = 0
    for frame, skipped, line in _chunks(frame, skipped, rest):
        entries = []
        for row_number, row in enumerate(frame.to_dict("records")):
            where = f"line {line + row_number}"
            image_file = clean(row.get(image_col))
            literal = image_file and fast_vector_literal(row[vector_col], dimension)
            if literal:
                record = _record(row, fields, image_file, None)
                entries.append(StagedRow(record, ordinal, where, row,
                                    staging_text_line(ordinal, record, literal)))
            else:
                outcome, _ = _check_row(row, columns, fields, where, dimension)
                if isinstance(outcome, RejectedRow):
                    entries.append(outcome)
                    continue
                entries.append(StagedRow(outcome, ordinal, where, None, None))
            ordinal += 1
        yield CopyChunk(entries, skipped, columns, fields, dimension)


@contextmanager
def prefetched(items: Iterator, help=None):
    """``with prefetched(gen, help) as ready:`` iterate ``gen`` run by a background thread
    one item ahead, so reading the file overlaps the database's work (psycopg releases the
    GIL while it waits for the server). While the next item waits to be taken, the thread
    calls ``help(item)`` for a callable that updates the item (stored only if the item is
    still not taken), until help returns None. The thread's exceptions are raised in the
    consumer; leaving the block early stops the thread."""
    cond = threading.Condition()
    empty = object()
    state = {"pending": empty, "finished": False, "error": None, "stop": False}

    def wait_taken(item) -> bool:
        while help is not None:
            with cond:
                if state["pending"] is not item or state["stop"]:
                    break
            store = help(item)
            if store is None:
                break
            with cond:
                if state["pending"] is item:
                    store()
        with cond:
            while state["pending"] is item and not state["stop"]:
                cond.wait()
            return not state["stop"]

    def produce():
        try:
            for item in items:
                with cond:
                    state["pending"] = item
                    cond.notify_all()
                if not wait_taken(item):
                    return
        except BaseException as exc:   # handed to the consumer, raised there
            state["error"] = exc
        finally:
            with cond:
                state["finished"] = True
                cond.notify_all()

    def consume():
        while True:
            with cond:
                while state["pending"] is empty and not state["finished"]:
                    cond.wait()
                item = state["pending"]
                if item is empty:
                    if state["error"] is not None:
                        raise state["error"]
                    return
                state["pending"] = empty
                cond.notify_all()
            yield item

    thread = threading.Thread(target=produce, name="pgallery-read-embeddings", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        with cond:
            state["stop"] = True
            cond.notify_all()
        thread.join()
