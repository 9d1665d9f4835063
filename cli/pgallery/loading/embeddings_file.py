"""Load a file of precomputed embeddings, tab-separated (embeddings_tsv.py) or Parquet
(embeddings_parquet.py, told by its magic bytes): :func:`load_embeddings_file`.

Who does what: embedding_rows.py (columns, rejection reasons, the batch), the two readers,
staging_sessions.py (batches written on two sessions in turn), prefetch.py (the reader
thread), writer.py (COPY and merge), after_load.py (the steps after every load).
"""

from __future__ import annotations

from pathlib import Path

from pgallery.errors import MismatchedDimension
from pgallery.loading import embeddings_parquet, embeddings_tsv
from pgallery.loading.after_load import after_load, defer_hnsw_indexes, restore_indexes
from pgallery.loading.embedding_rows import CopyChunk
from pgallery.loading.prefetch import prefetched
from pgallery.loading.staging_sessions import other_session, write_in_order
from pgallery.loading.summary import LoadSummary, Progress
from pgallery.loading.writer import register_model
from pgallery.providers.base import COLUMN_DIMENSION

STAGING_SESSIONS = 2      # 1: one session, batches strictly one after the other
CLIENT_PARSES = True      # the reader thread parses vectors while it waits (CopyChunk.parse_one)


def load_embeddings_file(conn, path: Path, *, model: str, batch_size: int = 2000,
                         progress: Progress | None = None) -> LoadSummary:
    """Load a precomputed-embeddings file (tab-separated, or Parquet: see
    embeddings_parquet.py): validate, COPY, merge per batch, then the after-load steps.

    A background thread reads and checks the file one batch ahead of the database, which
    parses most vectors itself (text COPY, see embeddings_tsv.read_for_copy); batches are staged on two
    sessions in turn and merged one at a time in file order (staging_sessions.py). What is
    loaded and rejected, and why, is exactly what read_embeddings_file says."""
    path = Path(path)
    parquet = embeddings_parquet.is_parquet(path)
    # the two formats' readers: the first vector's length, the row count, the batches
    probe, count_rows, read = (
        (embeddings_parquet.vector_dimension, embeddings_parquet.row_count,
         embeddings_parquet.read_parquet_for_copy) if parquet else
        (embeddings_tsv.vector_dimension, embeddings_tsv.count_data_lines,
         embeddings_tsv.read_for_copy))
    dimension = probe(path)
    summary = LoadSummary(model=model)
    if dimension is None:
        # nothing parseable: still report every row's reason
        if parquet:
            for chunk in read(path, None, batch_size):
                summary.seen += len(chunk.entries)
                summary.rejected += chunk.rejected()
            return summary
        for chunk in embeddings_tsv.read_embeddings_file(path, chunk_rows=batch_size):
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
        other = other_session(conn) if STAGING_SESSIONS > 1 else None
        try:
            with prefetched(chunks, help=CopyChunk.parse_one if CLIENT_PARSES else None
                            ) as ready:
                for merged, rejected, chunk in write_in_order(
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
    summary.took(after_load(conn))
    return summary
