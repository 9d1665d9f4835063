"""Read a Parquet file of precomputed embeddings: the vectors are already numbers.

The columns are those of the tab-separated layout (embeddings_tsv.py), in any case:
``image_file`` and ``vector`` (required), and any of description, author, title, technique,
date, type, school, timeframe, image_uri. ``vector`` holds a list of numbers per row (a
list, large list or fixed-size list of floats or integers). Write one from pandas:

    frame["vector"] = list(vectors.astype("float32"))     # one array per row
    frame.to_parquet("embeddings.parquet")

Nothing is parsed: a batch's vectors are checked in numpy at once, with the text path's
reasons (no image_file, no vector, wrong dimension, NaN or infinity, all zeros), and the
good rows go to the server in binary COPY. So a load from Parquet runs at the speed of a
binary COPY, where a text file's 1024 decimals per row must first be parsed
(bench/benchmarks/load.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pgallery.errors import ArgError
from pgallery.loading.embedding_rows import (ALL_ZEROS, NO_IMAGE_FILE, NOT_FINITE, CopyChunk,
                                             StagedRow, check_columns, field_map,
                                             wrong_dimension)
from pgallery.loading.records import PaintingRecord, RejectedRow, clean

MAGIC = b"PAR1"


def is_parquet(path: Path) -> bool:
    """True if the file starts with Parquet's magic bytes (whatever its name)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:   # missing or unreadable: the tab-separated reader says which
        return False


def _open(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
        raise ArgError(f"{path}: not a readable Parquet file ({exc})") from None


def _columns(parquet, path: Path) -> tuple[str, str, dict[str, str]]:
    """(image_file column, vector column, {column: PaintingRecord field}); ArgError if the
    vector column does not hold lists of numbers."""
    import pyarrow as pa

    names = parquet.schema_arrow.names
    columns = check_columns(names, path)
    vector = columns["vector"]
    kind = parquet.schema_arrow.field(vector).type
    is_list = (pa.types.is_list(kind) or pa.types.is_large_list(kind)
               or pa.types.is_fixed_size_list(kind))
    if not is_list or not (pa.types.is_floating(kind.value_type)
                           or pa.types.is_integer(kind.value_type)):
        raise ArgError(f"{path}: column {vector} must hold a list of numbers per row, "
                       f"not {kind}")
    return columns["image_file"], vector, field_map(columns)


def _batches(parquet, path: Path, **options):
    """The file's record batches; a damaged page is an ArgError naming where, after the
    batches before it (which the loader has written by then)."""
    import pyarrow as pa

    rows = 0
    batches = parquet.iter_batches(**options)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as exc:
            raise ArgError(f"{str(path):.200}: unreadable after row {rows} "
                           f"({' '.join(str(exc).split())})") from None
        rows += batch.num_rows
        yield batch


def row_count(path: Path) -> int:
    return _open(path).metadata.num_rows


def vector_dimension(path: Path) -> int | None:
    """The length of the first non-empty vector in the file (to register the model)."""
    import pyarrow.compute as pc

    parquet = _open(path)
    _, vector, _ = _columns(parquet, path)
    # small batches: the first vector is found without decoding the rest of the file
    for batch in _batches(parquet, path, batch_size=50, columns=[vector]):
        lengths = pc.list_value_length(batch.column(0)).fill_null(0).to_numpy()
        found = np.flatnonzero(lengths > 0)
        if len(found):
            return int(lengths[found[0]])
    return None


def _text(column) -> list[str | None]:
    """A metadata column as stored values (see records.clean), whatever its Arrow type."""
    import pyarrow as pa

    try:
        values = column.cast(pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ArgError(f"a metadata column of type {column.type} cannot be read as text "
                       f"({exc})") from None
    return [clean(v) for v in values]


def _vectors(column, dimension: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lengths, float32 rows of the right length, index of each such row in the batch).
    A null list has length -1; a null element becomes NaN (rejected as not finite)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).fill_null(-1).to_numpy().astype(np.int64)
    flat = pc.list_flatten(column).cast(pa.float32(), safe=False)  # float64 overflow: inf
    flat = flat.to_numpy(zero_copy_only=False)                      # null elements: NaN
    if dimension is None:
        return lengths, np.empty((0, 0), np.float32), np.empty(0, np.int64)
    good = np.flatnonzero(lengths == dimension)
    if len(good) == len(lengths):          # the usual case: no copy, a view of the batch
        return lengths, flat.reshape(len(lengths), dimension), good
    starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))[:-1]])
    rows = flat[starts[good, None] + np.arange(dimension)]
    return lengths, rows, good


def read_parquet_for_copy(path: Path, dimension: int | None,
                          chunk_rows: int = 2000) -> Iterator[CopyChunk]:
    """Batches of checked records (vectors as float32 arrays, for binary COPY) and the rows
    rejected with reasons, in file order. ``dimension`` None: every vector is absent."""
    path = Path(path)
    parquet = _open(path)
    image_col, vector_col, fields = _columns(parquet, path)
    wanted = list(dict.fromkeys([image_col, vector_col, *fields]))
    ordinal, row_number = 0, 0
    for batch in _batches(parquet, path, batch_size=chunk_rows, columns=wanted):
        texts = {name: _text(batch.column(name)) for name in dict.fromkeys([image_col, *fields])}
        lengths, rows, good = _vectors(batch.column(vector_col), dimension)
        vector_of = dict(zip(good.tolist(), range(len(good))))
        finite = np.isfinite(rows).all(axis=1)
        nonzero = rows.any(axis=1)
        entries: list[StagedRow | RejectedRow] = []
        for i in range(batch.num_rows):
            row_number += 1
            where = f"row {row_number}"
            image_file = texts[image_col][i]
            if not image_file:
                entries.append(RejectedRow(where, None, NO_IMAGE_FILE))
                continue
            k = vector_of.get(i)
            if k is None:
                n = int(lengths[i])
                reason = ("no vector" if n < 0 else "bad vector: empty vector" if n == 0
                          else wrong_dimension(n, dimension))
                entries.append(RejectedRow(where, image_file, reason))
                continue
            if not finite[k]:
                entries.append(RejectedRow(where, image_file, NOT_FINITE))
                continue
            if not nonzero[k]:
                entries.append(RejectedRow(where, image_file, ALL_ZEROS))
                continue
            values = {field: texts[src][i] for src, field in fields.items()}
            values["image_file"] = image_file
            record = PaintingRecord(**values, embedding=rows[k])
            entries.append(StagedRow(record, ordinal, where, None, None))
            ordinal += 1
        yield CopyChunk(entries, [], {}, fields, dimension or 0)
