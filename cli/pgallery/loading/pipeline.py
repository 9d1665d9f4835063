"""The embed-and-load engine: images in, vectors committed in batches, nothing done twice.

For a list of :class:`~pgallery.loading.sources.ImageItem` (from a SemArt CSV, a folder, the
failed-image list or the whole collection) and one provider, :func:`load_images`:

1. hashes each image file (sha256 of its bytes) and asks the database, once per chunk,
   which images already have a vector of this model computed from the same bytes; those are
   *unchanged*: not sent to the provider, only their metadata is merged (a no-op when it did
   not change either);
2. streams every other image into ``provider.embed_images``, which runs them concurrently
   within its rate limit and yields results in any order;
3. computes each local image's palette (pgallery.palette: its dominant colours, whatever
   the provider) as it is hashed, for the images to embed and for unchanged ones whose
   palette is missing or was computed from other bytes (images given by URL get theirs
   from ``pgallery palettes backfill``, which fetches them);
4. writes the vectors in batches (``write_batch``: COPY into the staging table, one merge,
   one transaction), at least every ``flush_seconds`` so a slow provider's work is
   committed often; failures (``EmbeddingFailed``: code and message; a file that cannot
   be read gets the image reader's typed error, as in the providers) are recorded in
   ``embedding_failure`` in the same transaction, with the painting's metadata, so
   ``--retry-failed`` can redo exactly those.

Killing the process (SIGKILL, Ctrl-C, the database going away) keeps every committed batch
and nothing of the one in flight; the next run skips what is committed and asks the
provider only for the rest. On Ctrl-C or a provider error the vectors already received are
committed before the error propagates.

The lookups may run in the provider's feeder thread; every use of the connection is
serialised by one lock and wrapped in its own transaction.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from psycopg.rows import dict_row

from pgallery.errors import EmbeddingFailed
from pgallery.intake import content_hash, is_url
from pgallery.loading.records import METADATA_FIELDS, PaintingRecord, RejectedRow
from pgallery.loading.sources import ImageItem, SourceListing
from pgallery.loading.summary import LoadSummary, Progress
from pgallery.loading.after_load import after_load
from pgallery.loading.palettes import palette_of_file, store_palettes
from pgallery.loading.writer import record_failures, register_model, write_batch
from pgallery.providers.base import EmbeddingProvider

DEFAULT_BATCH_SIZE = 200     # vectors per transaction
DEFAULT_FLUSH_SECONDS = 5.0  # ... or whatever arrived in this many seconds
LOOKUP_CHUNK = 256           # images hashed and looked up per query

EXISTING_SQL = """
SELECT p.image_file, e.content_hash
FROM painting p JOIN painting_embedding e ON e.painting_id = p.painting_id
WHERE p.image_file = ANY(%s) AND e.model = %s
"""

# The bytes each painting's stored palette came from, whatever model embedded it: a palette
# belongs to the picture, so a new model (`pgallery reembed`) or a re-run keeps it.
PALETTE_HASH_SQL = """
SELECT p.image_file, pp.content_hash
FROM painting p JOIN painting_palette pp ON pp.painting_id = p.painting_id
WHERE p.image_file = ANY(%s)
"""


@dataclass
class ImageLoadSummary(LoadSummary):
    """LoadSummary plus what only an image load has: provider calls, failures, warnings."""

    requested: int = 0            # images sent to the provider in this run
    failed: int = 0               # of which (or before which) this many failed
    warnings: list[str] = field(default_factory=list)


def _hash(item: ImageItem) -> tuple[str | None, tuple[ImageItem, EmbeddingFailed] | None]:
    """(content hash, None), or (None, failure) when the file cannot be read (the image
    reader's typed error: ImageNotFound, UnreadableImage)."""
    if is_url(item.path):
        return None, None
    try:
        return content_hash(item.path), None
    except EmbeddingFailed as exc:
        return None, (item, exc)


def _add_palettes(items: list[ImageItem]) -> None:
    """Each local image's palette on its record. An image that cannot be read gets none
    here: the provider meets the same error and records it as the image's failure."""
    for item in items:
        if is_url(item.path):
            continue
        try:
            item.record.palette, _ = palette_of_file(item.path, name=str(item.path))
        except EmbeddingFailed:
            item.record.palette = None


def check_vector(vector, dimension: int) -> np.ndarray:
    """The provider's vector as float32, or EmbeddingFailed('InvalidVector')."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    if v.shape[0] != dimension:
        raise EmbeddingFailed(f"the provider returned {v.shape[0]} dimensions, not {dimension}",
                              code="InvalidVector")
    if not np.isfinite(v).all() or not v.any():
        raise EmbeddingFailed("the provider returned a vector that is all zeros or not finite",
                              code="InvalidVector")
    return v


def _metadata_only(record: PaintingRecord) -> PaintingRecord:
    values = {name: getattr(record, name) for name in METADATA_FIELDS}
    return PaintingRecord(image_file=record.image_file, image_uri=record.image_uri,
                          content_hash=record.content_hash, **values)


class _Load:
    """One run of the engine (state shared by the lookup generator and the result loop)."""

    def __init__(self, conn, provider: EmbeddingProvider, summary: ImageLoadSummary,
                 progress: Progress | None, batch_size: int, flush_seconds: float):
        self.conn = conn
        self.provider = provider
        self.model = provider.model
        self.summary = summary
        self.progress = progress
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.lock = threading.RLock()
        # str(source) -> the items sent to the provider (two paintings may share a file)
        self.in_flight: dict[str, list[ImageItem]] = {}
        self.embedded: list[PaintingRecord] = []     # received, not yet committed
        self.failed: list[tuple[ImageItem, EmbeddingFailed]] = []
        self.lookup_error: BaseException | None = None
        self.last_flush = time.monotonic()

    def _advance(self, n: int) -> None:
        if self.progress and n:
            self.progress.advance(n)

    # --- before the provider: hash, look up, skip what is already there -----------------

    def _existing(self, image_files: list[str]) -> tuple[dict[str, str | None], dict[str, str]]:
        """(image_file -> the hash embedded, for those embedded with this model;
        image_file -> the hash its stored palette came from, for those with a palette)."""
        with self.conn.transaction():
            embedded = dict(self.conn.execute(EXISTING_SQL, (image_files, self.model)).fetchall())
            palettes = dict(self.conn.execute(PALETTE_HASH_SQL, (image_files,)).fetchall())
        return embedded, palettes

    def _classify(self, chunk: list[ImageItem]) -> list[ImageItem]:
        """Write the unchanged and the unreadable; return the images to embed."""
        hashed, failures = [], []
        for item in chunk:
            digest, failure = _hash(item)
            if failure:
                failures.append(failure)
            else:
                item.record.content_hash = digest
                hashed.append(item)
        with self.lock:
            existing, palettes = (self._existing([i.record.image_file for i in hashed])
                                  if hashed else ({}, {}))
        unchanged, to_embed = [], []
        for item in hashed:
            file = item.record.image_file
            same = file in existing and (
                is_url(item.path) or existing[file] == item.record.content_hash)
            (unchanged if same else to_embed).append(item)

        # a palette is computed once per picture: not again for a new model or a re-run
        # (a URL's picture has none here: its bytes are the provider's to fetch)
        paint = [i for i in hashed if not is_url(i.path)
                 and palettes.get(i.record.image_file) != i.record.content_hash]
        _add_palettes(paint)                    # outside the lock: results keep flowing
        unchanged_ids = {id(i) for i in unchanged}
        repaint = [i for i in paint if id(i) in unchanged_ids]
        with self.lock:
            if unchanged:
                with self.conn.transaction():
                    self.summary.merged += write_batch(
                        self.conn, self.model, [_metadata_only(i.record) for i in unchanged])
                    store_palettes(self.conn, [(i.record.image_file, i.record.palette,
                                                i.record.content_hash)
                                               for i in repaint if i.record.palette])
                    # an image that is embedded after all is no longer a failure
                    self.conn.execute(
                        "DELETE FROM embedding_failure WHERE model = %s AND image_file = ANY(%s)",
                        (self.model, [i.record.image_file for i in unchanged]))
                self.summary.unchanged += len(unchanged)
            if failures:
                self.failed.extend(failures)
                self._flush()
            self._advance(len(unchanged) + len(failures))
        return to_embed

    def sources(self, items: list[ImageItem]) -> Iterator:
        """What the provider embeds: images not yet embedded from these bytes, chunk by
        chunk. A database error here stops the stream; load_images raises it at the end."""
        try:
            for start in range(0, len(items), LOOKUP_CHUNK):
                for item in self._classify(items[start:start + LOOKUP_CHUNK]):
                    source = item.path if is_url(item.path) else str(item.path)
                    with self.lock:
                        self.in_flight.setdefault(str(source), []).append(item)
                        self.summary.requested += 1
                    yield source
        except Exception as exc:  # noqa: BLE001 -- re-raised by load_images
            self.lookup_error = exc

    # --- after the provider: collect, write in batches ----------------------------------

    def take(self, result) -> None:
        with self.lock:
            waiting = self.in_flight[str(result.source)]
            item = waiting.pop(0)
            if not waiting:
                del self.in_flight[str(result.source)]
            if result.ok:
                try:
                    item.record.embedding = check_vector(result.vector, self.provider.dimension)
                    self.embedded.append(item.record)
                except EmbeddingFailed as exc:
                    self.failed.append((item, exc))
            else:
                error = result.error or EmbeddingFailed("no vector and no error", code="Unknown")
                self.failed.append((item, error))
            self._advance(1)
            if (len(self.embedded) + len(self.failed) >= self.batch_size
                    or time.monotonic() - self.last_flush >= self.flush_seconds):
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        """Commit what arrived: vectors, and failures with their metadata, one transaction."""
        self.last_flush = time.monotonic()
        if not self.embedded and not self.failed:
            return
        failures = [(i.record.image_file, i.record.image_uri, e.code, str(e))
                    for i, e in self.failed]
        rows = list(self.embedded)
        for item, _ in self.failed:
            meta = _metadata_only(item.record)
            meta.content_hash = None  # painting.content_hash is the hash last embedded
            rows.append(meta)
        with self.conn.transaction():
            counts = write_batch(self.conn, self.model, rows)
            store_palettes(self.conn, [(r.image_file, r.palette, r.content_hash)
                                       for r in self.embedded if r.palette is not None])
            record_failures(self.conn, self.model, failures)
        self.summary.merged += counts
        self.summary.failed += len(self.failed)
        self.summary.rejected += [RejectedRow(i.where, i.record.image_file, f"{e.code}: {e}")
                                  for i, e in self.failed]
        self.embedded.clear()
        self.failed.clear()


def load_images(conn: psycopg.Connection, provider: EmbeddingProvider,
                listing: SourceListing, *, batch_size: int = DEFAULT_BATCH_SIZE,
                flush_seconds: float = DEFAULT_FLUSH_SECONDS,
                progress: Progress | None = None, finish: bool = True) -> ImageLoadSummary:
    """Embed and load the listed images with ``provider`` (see the module docstring).

    ``finish``: after a load that wrote vectors, run the after-load steps (after_load.py).
    """
    model = provider.model
    register_model(conn, model, provider.dimension, provider=provider.name)
    summary = ImageLoadSummary(model=model, seen=len(listing.items) + len(listing.rejected),
                               rejected=list(listing.rejected),
                               warnings=list(listing.warnings))
    run = _Load(conn, provider, summary, progress, max(1, batch_size), flush_seconds)
    if progress:
        progress.start(len(listing.items))
    results = provider.embed_images(run.sources(listing.items))
    try:
        for result in results:
            run.take(result)
    except BaseException:
        # keep the vectors we already paid for, unless the database is what failed
        try:
            run.flush()
        except Exception:  # noqa: BLE001 -- the original error is the one to report
            pass
        raise
    finally:
        close = getattr(results, "close", None)
        if close:
            close()
    run.flush()
    if run.lookup_error is not None:
        raise run.lookup_error
    if finish and summary.merged.embeddings:
        summary.took(after_load(conn))
    return summary


# --- listings that come from the database ----------------------------------------------

PAINTING_COLUMNS = ("image_file", "image_uri") + METADATA_FIELDS


def _record(row: dict) -> PaintingRecord:
    return PaintingRecord(**{name: row.get(name) for name in PAINTING_COLUMNS})


def failed_images(conn: psycopg.Connection, model: str) -> SourceListing:
    """The images whose embedding failed for ``model``, with their paintings' metadata."""
    columns = ", ".join(f"p.{c}" for c in METADATA_FIELDS)
    with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(
            f"SELECT f.image_file, coalesce(f.image_uri, p.image_uri) AS image_uri, {columns}"
            " FROM embedding_failure f LEFT JOIN painting p ON p.image_file = f.image_file"
            " WHERE f.model = %s ORDER BY f.image_file", (model,)).fetchall()
    listing = SourceListing()
    for row in rows:
        if not row["image_uri"]:
            listing.rejected.append(RejectedRow(
                row["image_file"], row["image_file"], "no image location was recorded"))
            continue
        listing.items.append(ImageItem(row["image_uri"], _record(row), row["image_uri"]))
    return listing


def collection_images(conn: psycopg.Connection, images_dir: Path | None = None,
                      ) -> SourceListing:
    """Every painting of the collection, to embed with another model.

    Each image is found at its recorded image_uri; when that file is gone (or none was
    recorded, as after ``load --embeddings``) and ``images_dir`` is given, at
    ``images_dir/image_file``.
    """
    with conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(f"SELECT {', '.join(PAINTING_COLUMNS)} FROM painting"
                           " ORDER BY image_file").fetchall()
    base = Path(os.path.abspath(images_dir)) if images_dir else None
    listing = SourceListing()
    for row in rows:
        uri = row["image_uri"]
        usable = uri and (is_url(uri) or os.path.isfile(uri))
        if not usable and base is not None:
            uri = str(base / row["image_file"])
        if not uri:
            listing.rejected.append(RejectedRow(
                row["image_file"], row["image_file"],
                "no image location is recorded; pass --images DIR"))
            continue
        record = _record(row)
        record.image_uri = uri
        listing.items.append(ImageItem(uri, record, uri))
    return listing


def count_missing(conn: psycopg.Connection, model: str) -> int:
    """Paintings without a vector of ``model``."""
    with conn.transaction():
        # a set difference, not a correlated NOT EXISTS, which Citus cannot run on a
        # reference table's rows (docs/scale-out.md)
        return conn.execute(
            "SELECT count(*) FROM (SELECT p.painting_id FROM painting p EXCEPT"
            " SELECT e.painting_id FROM painting_embedding e WHERE e.model = %s) AS missing",
            (model,)).fetchone()[0]

