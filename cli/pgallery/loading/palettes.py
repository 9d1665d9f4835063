"""Palettes into the database: computed by the loader as it reads each image, or for a
collection loaded before palettes existed by :func:`backfill_palettes`.

``backfill_palettes`` does only the paintings that have no palette, in painting_id order,
committing every ``batch_size``; stopped (Ctrl-C, a crash) it keeps every committed batch
and the next run carries on with the rest. An image that cannot be read is reported and
left without a palette (the next run tries it again).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgallery.errors import EmbeddingFailed
from pgallery.intake import AddressPolicy, is_url, read_image
from pgallery.loading.summary import Progress
from pgallery.palette import Palette, extract_palette, histogram

DEFAULT_BATCH = 200

# The histogram is sent with the colours (pgallery.palette.histogram, the same as SQL's
# palette_histogram: a bulk write then computes none in SQL; the table's trigger fills it
# for a row written without one). computed_at is the inserted row's default (now()), not a
# now() in DO UPDATE, which Citus refuses on a reference table.
STORE_SQL = """
INSERT INTO painting_palette AS pp (painting_id, lab, shares, histogram, content_hash)
SELECT p.painting_id, %(lab)s::real[], %(shares)s::real[], %(histogram)s::vector, %(hash)s
FROM painting p WHERE p.image_file = %(image_file)s
ON CONFLICT (painting_id) DO UPDATE
SET lab = excluded.lab, shares = excluded.shares, histogram = excluded.histogram,
    content_hash = excluded.content_hash, computed_at = excluded.computed_at
"""

MISSING_SQL = """
SELECT p.painting_id, p.image_file, p.image_uri FROM painting p
WHERE p.painting_id > %s
  AND NOT EXISTS (SELECT FROM painting_palette pp WHERE pp.painting_id = p.painting_id)
ORDER BY p.painting_id LIMIT %s
"""

COUNT_MISSING_SQL = """
SELECT count(*) FROM painting p
WHERE NOT EXISTS (SELECT FROM painting_palette pp WHERE pp.painting_id = p.painting_id)
"""


def store_palettes(conn: psycopg.Connection,
                   rows: Iterable[tuple[str, Palette, str | None]]) -> int:
    """Write (image_file, palette, content hash) rows, replacing older palettes; in the
    caller's transaction. The rows whose painting is unknown are ignored. Returns how
    many were given."""
    params = [{"image_file": image_file, "lab": palette.lab.tolist(),
               "shares": palette.shares.tolist(), "hash": digest,
               "histogram": _vector_text(histogram(palette.lab, palette.shares))}
              for image_file, palette, digest in rows]
    if params:
        with conn.cursor() as cur:
            cur.executemany(STORE_SQL, params)
    return len(params)


def _vector_text(v) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def palette_of_file(path, name: str | None = None) -> tuple[Palette, str]:
    """(palette, sha256 of the bytes) of a local image or an http(s) URL. Raises the
    intake's typed errors."""
    checked = read_image(path, decode=False, name=name)
    return extract_palette(checked), checked.sha256


@dataclass
class BackfillSummary:
    done: int = 0                          # palettes written in this run
    failed: list[tuple[str, str]] = field(default_factory=list)   # (image_file, reason)
    remaining: int = 0                     # paintings still without one afterwards


def count_missing_palettes(conn: psycopg.Connection) -> int:
    with conn.transaction():
        return conn.execute(COUNT_MISSING_SQL).fetchone()[0]


def backfill_palettes(conn: psycopg.Connection, *, images_dir: Path | None = None,
                      batch_size: int = DEFAULT_BATCH, progress: Progress | None = None,
                      limit: int | None = None,
                      policy: AddressPolicy = AddressPolicy.ANY) -> BackfillSummary:
    """Compute and store the palette of every painting that has none (see the module
    docstring). ``images_dir``: where to look for an image (by image_file) whose recorded
    location is missing. ``limit``: stop after this many paintings."""
    summary = BackfillSummary()
    total = count_missing_palettes(conn)
    if limit is not None:
        total = min(total, limit)
    if progress:
        progress.start(total)
    after, seen = 0, 0
    base = Path(os.path.abspath(images_dir)) if images_dir else None
    while seen < total:
        with conn.transaction():
            rows = conn.execute(MISSING_SQL, (after, min(batch_size, total - seen))).fetchall()
        if not rows:
            break
        computed = []
        for painting_id, image_file, image_uri in rows:
            after = painting_id
            source = _source(image_file, image_uri, base)
            if source is None:
                summary.failed.append((image_file, "no image location is recorded; pass "
                                                   "--images DIR"))
                continue
            try:
                palette, digest = palette_of_file(source, name=str(source))
            except EmbeddingFailed as exc:
                summary.failed.append((image_file, f"{exc.code}: {exc}"))
                continue
            computed.append((image_file, palette, digest))
        with conn.transaction():
            summary.done += store_palettes(conn, computed)
        seen += len(rows)
        if progress:
            progress.advance(len(rows))
    summary.remaining = count_missing_palettes(conn)
    return summary


def _source(image_file: str, image_uri: str | None, base: Path | None):
    if image_uri and (is_url(image_uri) or os.path.isfile(image_uri)):
        return image_uri
    if base is not None and (base / image_file).is_file():
        return base / image_file
    return image_uri or None
