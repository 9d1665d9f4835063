"""Write paintings in batches: COPY into a staging table, then one merge per batch.

Each batch is one transaction (``merge_staged_paintings`` in sql/idempotent/), so an
interrupted load keeps every batch that committed and nothing of the one in flight.

:func:`write_batch` sends float32 arrays in binary COPY (vectors computed in process);
:func:`write_batch_staged` may also send rows already in COPY text format, their vectors as
pgvector text for the server to parse (vectors read from a file, see embeddings_tsv.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg

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
