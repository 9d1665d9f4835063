"""Read a file of precomputed embeddings (the reference pipeline's output).

Two layouts, both tab-separated with a header:

- lower-case: ``image_file, description, author, title, technique, type, timeframe, vector``
  (extra columns such as date or school are used when present);
- SemArt's nine upper-case columns ``IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE, TECHNIQUE, DATE,
  TYPE, SCHOOL, TIMEFRAME`` plus a ``VECTOR`` (or ``vector``) column.

``vector`` is a JSON-style list of floats. Rows whose vector is malformed, of the wrong
dimension, non-finite or all zeros are rejected with a reason; every other row is loaded.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pgallery.errors import ArgError
from pgallery.loading.records import PaintingRecord, RejectedRow, clean
from pgallery.loading.summary import LoadSummary, Progress
from pgallery.loading.writer import (defer_hnsw_indexes, finish_load, parse_vector_text,
                                     register_model, restore_indexes, write_batch)

# input column (lower-cased) -> PaintingRecord field
COLUMN_FIELDS = {
    "image_file": "image_file", "description": "description", "author": "author",
    "title": "title", "technique": "technique", "date": "date", "type": "painting_type",
    "painting_type": "painting_type", "school": "school", "timeframe": "timeframe",
    "image_uri": "image_uri", "image_url": "image_uri", "url": "image_uri",
}
REQUIRED = ("image_file", "vector")


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
    raise ArgError(f"{path}: neither UTF-8 nor cp1252 text")


def check_columns(columns: list[str], path: Path) -> dict[str, str]:
    """Map the file's columns to fields; ArgError naming what is missing."""
    lowered = {c.strip().lower(): c for c in columns}
    missing = [c for c in REQUIRED if c not in lowered]
    if missing:
        raise ArgError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns)}. "
            "Expected a tab-separated file with image_file, ..., vector"
        )
    return lowered


def read_embeddings_file(path: Path, dimension: int | None = None,
                         chunk_rows: int = 2000) -> Iterator[Chunk]:
    """Yield chunks of validated records (and the rows rejected, with reasons).

    ``dimension``: the expected vector length; None = take it from the first good row.
    """
    path = Path(path)
    if not path.is_file():
        raise ArgError(f"{path}: no such file")
    frame, skipped, rest = _open_frames(path, chunk_rows)
    if frame is None:
        if skipped:
            yield Chunk([], skipped, 2)
        return
    columns = check_columns(list(frame.columns), path)
    vector_col = columns["vector"]
    fields = {src: COLUMN_FIELDS[name] for name, src in columns.items() if name in COLUMN_FIELDS}
    # Line numbers are exact until pandas skips a malformed line; after that they count
    # the rows that parsed (pandas reports the skipped lines' own numbers).
    line = 2  # the header is line 1
    frames = [frame]
    while frames:
        frame = frames.pop()
        records, rejected = [], skipped
        for row_number, row in enumerate(frame.to_dict("records")):
            where = f"line {line + row_number}"
            image_file = clean(row.get(columns["image_file"]))
            if not image_file:
                rejected.append(RejectedRow(where, None, "no image_file"))
                continue
            try:
                vector = parse_vector_text(row[vector_col])
            except ValueError as exc:
                rejected.append(RejectedRow(where, image_file, f"bad vector: {exc}"))
                continue
            if dimension is None:
                dimension = len(vector)
            if len(vector) != dimension:
                rejected.append(RejectedRow(
                    where, image_file,
                    f"vector has {len(vector)} dimensions, expected {dimension}"))
                continue
            if not np.isfinite(vector).all():
                rejected.append(RejectedRow(where, image_file, "vector holds NaN or infinity"))
                continue
            if not vector.any():
                rejected.append(RejectedRow(where, image_file, "vector is all zeros"))
                continue
            values = {field: clean(row.get(src)) for src, field in fields.items()}
            values["image_file"] = image_file
            records.append(PaintingRecord(**values, embedding=vector))
        yield Chunk(records, rejected, line)
        line += len(frame)
        nxt, skipped = _next_frame(rest)
        if nxt is not None:
            frames.append(nxt)


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
    """Load a precomputed-embeddings file: validate, COPY, merge per batch, ANALYZE."""
    path = Path(path)
    dimension = vector_dimension(path)
    summary = LoadSummary(model=model)
    if dimension is None:
        # nothing parseable: still report every row's reason
        for chunk in read_embeddings_file(path, chunk_rows=batch_size):
            summary.seen += len(chunk.records) + len(chunk.rejected)
            summary.rejected += chunk.rejected
        return summary
    register_model(conn, model, dimension, provider="file")
    lines = count_data_lines(path)
    if progress:
        progress.start(lines)
    # A bulk load builds the HNSW index once at the end (restored even if the load fails).
    deferred = defer_hnsw_indexes(conn, lines)
    try:
        ordinal = 0
        for chunk in read_embeddings_file(path, dimension=dimension, chunk_rows=batch_size):
            summary.seen += len(chunk.records) + len(chunk.rejected)
            summary.rejected += chunk.rejected
            summary.merged += write_batch(conn, model, chunk.records, first_ordinal=ordinal)
            ordinal += len(chunk.records)
            if progress:
                progress.advance(len(chunk.records) + len(chunk.rejected))
    finally:
        restore_indexes(conn, deferred)
    summary.ivfflat_rebuilt = finish_load(conn)
    return summary
