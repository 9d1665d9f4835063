"""Read a tab-separated file of precomputed embeddings (the reference pipeline's output).

Two layouts, both tab-separated with a header:

- lower-case: ``image_file, description, author, title, technique, type, timeframe, vector``
  (extra columns such as date or school are used when present);
- SemArt's nine upper-case columns ``IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE, TECHNIQUE, DATE,
  TYPE, SCHOOL, TIMEFRAME`` plus a ``VECTOR`` (or ``vector``) column.

``vector`` is a JSON-style list of floats. Rows whose vector is malformed, of the wrong
dimension, non-finite or all zeros are rejected with a reason (embedding_rows.py); every
other row is loaded. :func:`read_embeddings_file` is the exact path (every vector parsed
in Python); :func:`read_for_copy`, which the loader uses, leaves most vectors for the
server to parse and gives the same result.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pgallery.errors import ArgError
from pgallery.loading.embedding_rows import (CopyChunk, StagedRow, check_columns, check_row,
                                             field_map, make_record)
from pgallery.loading.records import PaintingRecord, RejectedRow, clean
from pgallery.loading.writer import staging_text_line
from pgallery.providers.base import COLUMN_DIMENSION


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
            outcome, parsed = check_row(row, columns, fields, f"line {line + row_number}",
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


def vector_dimension(path: Path) -> int | None:
    """The dimension of the first parseable vector in the file (to register the model)."""
    for chunk in read_embeddings_file(path, chunk_rows=50):
        for record in chunk.records:
            return len(record.embedding)
    return None


def count_data_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return max(0, sum(1 for _ in fh) - 1)


# -- the fast path: the server parses the vectors ------------------------------------------
#
# Parsing 1024 numbers of text per row is most of a load's work, and costs about the same
# wherever it runs (~0.4-0.5 us a number: a correctly rounded conversion of a 17-digit
# decimal, numpy in Python or strtof in pgvector's vector_in). What pays is where: in
# Python it serialises with reading the file; sent as text in a text-format COPY, the
# server parses it in another process (two, with two sessions) while Python reads on. So a
# vector goes to the server as it was read whenever cheap C-speed checks prove the exact
# Python path (check_row) would accept it:
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
    prove check_row would accept it; None: check it exactly."""
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
                record = make_record(row, fields, image_file, None)
                entries.append(StagedRow(record, ordinal, where, row,
                                    staging_text_line(ordinal, record, literal)))
            else:
                outcome, _ = check_row(row, columns, fields, where, dimension)
                if isinstance(outcome, RejectedRow):
                    entries.append(outcome)
                    continue
                entries.append(StagedRow(outcome, ordinal, where, None, None))
            ordinal += 1
        yield CopyChunk(entries, skipped, columns, fields, dimension)
