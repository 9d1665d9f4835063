"""The rows of an embeddings file, whatever its format: which columns it has, the reasons a
row is rejected, the exact check of one text row, and the batch (CopyChunk) that both
readers (embeddings_tsv.py, embeddings_parquet.py) hand to the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pgallery.errors import ArgError
from pgallery.loading.records import PaintingRecord, RejectedRow, clean
from pgallery.loading.writer import parse_vector_text

# input column (lower-cased) -> PaintingRecord field
COLUMN_FIELDS = {
    "image_file": "image_file", "description": "description", "author": "author",
    "title": "title", "technique": "technique", "date": "date", "type": "painting_type",
    "painting_type": "painting_type", "school": "school", "timeframe": "timeframe",
    "image_uri": "image_uri", "image_url": "image_uri", "url": "image_uri",
}
REQUIRED = ("image_file", "vector")

# Why a row is not loaded: the same reasons from both readers.
NO_IMAGE_FILE = "no image_file"
NOT_FINITE = "vector holds NaN or infinity"
ALL_ZEROS = "vector is all zeros"


def wrong_dimension(length: int, dimension: int) -> str:
    return f"vector has {length} dimensions, expected {dimension}"


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


def check_row(row: dict, columns: dict[str, str], fields: dict[str, str], where: str,
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
    return make_record(row, fields, image_file, vector), len(vector)


def make_record(row: dict, fields: dict[str, str], image_file: str,
                vector: np.ndarray | None) -> PaintingRecord:
    values = {field: clean(row.get(src)) for src, field in fields.items()}
    values["image_file"] = image_file
    return PaintingRecord(**values, embedding=vector)


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
        return check_row(entry.row, self.columns, self.fields, entry.where, self.dimension)[0]

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
