"""Synthetic paintings for SQL tests: clustered unit vectors with SemArt-like metadata whose
values span common and rare selectivities, plus exact numpy ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pgallery.loading.after_load import BULK_LOAD_ROWS, defer_hnsw_indexes, restore_indexes
from pgallery.loading.records import PaintingRecord
from pgallery.loading.writer import register_model, write_batch

TYPES = ["religious", "portrait", "landscape", "mythological", "genre", "still-life"]
SCHOOLS = ["Italian", "Dutch", "Flemish", "French", "Spanish", "German"]


@dataclass
class Collection:
    vectors: np.ndarray            # (n, 1024) float32, unit norm
    records: list[PaintingRecord]

    def mask(self, **filters) -> np.ndarray:
        """Which rows pass the filters, computed in Python the way the SQL documents them."""
        keep = np.ones(len(self.records), dtype=bool)
        for i, r in enumerate(self.records):
            for key, value in filters.items():
                if key in ("author", "technique", "school"):
                    field = getattr(r, key)
                    ok = field is not None and value.lower() in field.lower()
                elif key in ("painting_type", "timeframe"):
                    field = getattr(r, key)
                    ok = field is not None and field.lower() == value.lower()
                else:
                    continue
                keep[i] &= ok
        lo, hi = filters.get("year_from"), filters.get("year_to")
        if lo is not None or hi is not None:
            years = np.array([int(r.date) for r in self.records])
            keep &= (years >= (lo if lo is not None else -10**9)) & \
                    (years <= (hi if hi is not None else 10**9))
        return keep

    def exact_top_k(self, query: np.ndarray, k: int, **filters) -> list[str]:
        """image_files of the k nearest by cosine distance among rows passing the filters."""
        q = query / np.linalg.norm(query)
        distances = 1 - self.vectors @ q
        idx = np.flatnonzero(self.mask(**filters))
        order = idx[np.lexsort((idx, distances[idx]))][:k]
        return [self.records[i].image_file for i in order]


def make_collection(n: int, seed: int = 0, clusters: int = 50, prefix: str = "syn") -> Collection:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, 1024)).astype(np.float32)
    assign = rng.integers(0, clusters, n)
    scale = rng.uniform(0.3, 0.8, 1024).astype(np.float32)   # anisotropic spread
    vectors = centers[assign] + rng.standard_normal((n, 1024)).astype(np.float32) * scale
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    records = []
    for i in range(n):
        # 1 in 1000 is by van Gogh (rare), 1 in 20 is a landscape from Siena (5%)
        author = "GOGH, Vincent van" if i % 1000 == 7 else f"PAINTER {i % 200:03d}, Anon"
        records.append(PaintingRecord(
            image_file=f"{prefix}-{i:06d}.jpg",
            title=f"Painting number {i}",
            author=author,
            technique="Oil on canvas" if i % 3 else "Tempera on panel",
            date=str(1400 + (i * 7) % 500),
            painting_type=TYPES[i % len(TYPES)],
            school="Sienese" if i % 20 == 3 else SCHOOLS[i % len(SCHOOLS)],
            timeframe=f"{1401 + ((i * 7) % 500) // 50 * 50}-{1450 + ((i * 7) % 500) // 50 * 50}",
            description=("A stormy sea with a lighthouse" if i % 97 == 0
                         else f"A quiet scene, study {i}"),
            embedding=vectors[i],
        ))
    return Collection(vectors, records)


def load_collection(conn, collection: Collection, model: str = "test/synthetic",
                    batch: int = 5000) -> None:
    # a thousand rows or more: the HNSW index is built once after them, as a bulk load
    # does (the same index, several times faster than inserting every row into the graph)
    indexes = []
    if len(collection.records) >= 1000:
        conn.commit()
        indexes = defer_hnsw_indexes(conn, BULK_LOAD_ROWS)
    register_model(conn, model, 1024, "test")
    for start in range(0, len(collection.records), batch):
        write_batch(conn, model, collection.records[start:start + batch], first_ordinal=start)
    if indexes:
        conn.commit()
        restore_indexes(conn, indexes)
    previous = conn.autocommit
    conn.autocommit = True
    conn.execute("ANALYZE painting")
    conn.execute("ANALYZE painting_embedding")
    conn.autocommit = previous


def queries_near(collection: Collection, count: int, seed: int = 1) -> np.ndarray:
    """Query vectors near (but not on) stored ones, like real queries."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(collection.records), count, replace=False)
    q = collection.vectors[picks] + 0.5 * rng.standard_normal((count, 1024)).astype(np.float32) / 32
    return q / np.linalg.norm(q, axis=1, keepdims=True)
