"""The map in the database (table painting_map, revision 0017): a full layout written in
one transaction, new paintings placed by SQL's place_on_map(), what a viewport shows by
SQL's map_points().

A full layout reads every vector of the model, computes positions (layout.py) and replaces
the model's map at once: a reader sees the old map or the new one, never half of each.
Ranks are a random permutation (seeded), so the zoomed-out sample is an even one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg

from pgallery.errors import ArgError
from pgallery.map import layout as layouts

READ_BATCH = 5000


@dataclass
class LayoutSummary:
    model: str
    paintings: int
    method: str
    seconds: float


@dataclass
class MapStatus:
    model: str
    vectors: int            # paintings of the model with a vector
    laid_out: int           # placed by the last full layout
    placed: int             # placed beside their neighbours since
    unplaced: int           # with a vector and no place yet


def _settled(conn: psycopg.Connection) -> None:
    """End the transaction a read opened (a connection not in autocommit), so that the
    writes after it run in transactions of their own."""
    if not conn.autocommit:
        conn.commit()


def resolve_model(conn: psycopg.Connection, model: str | None) -> str:
    """The model's name (the active one's when None); PGA04 from SQL when there is none."""
    try:
        return conn.execute("SELECT (resolve_model(%s)).name", (model,)).fetchone()[0]
    finally:
        if not conn.autocommit:
            conn.rollback()


def read_vectors(conn: psycopg.Connection, model: str,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(painting ids, (n, dimension) float32 vectors) of a model, in painting_id order.
    Only the model's own dimensions are read (the stored vectors are zero-padded)."""
    # two statements: Citus refuses a subquery correlated with a reference table's rows
    dim = conn.execute("SELECT dimension FROM embedding_model WHERE name = %s",
                       (model,)).fetchone()[0]
    total = conn.execute("SELECT count(*) FROM painting_embedding WHERE model = %s",
                         (model,)).fetchone()[0]
    ids = np.empty(total, dtype=np.int64)
    X = np.empty((total, dim), dtype=np.float32)
    done = 0
    with conn.cursor(binary=True) as cur:
        # subvector(): the model's dimensions only; binary vectors arrive as numpy arrays
        cur.execute("SELECT painting_id, subvector(embedding, 1, %s)"
                    " FROM painting_embedding WHERE model = %s ORDER BY painting_id",
                    (dim, model))
        while rows := cur.fetchmany(READ_BATCH):
            rows = rows[:total - done]
            ids[done:done + len(rows)] = [r[0] for r in rows]
            X[done:done + len(rows)] = [_array(r[1]) for r in rows]
            done += len(rows)
            if progress:
                progress(done, total)
    _settled(conn)
    return ids[:done], X[:done]


def _array(v) -> np.ndarray:
    """A vector as psycopg gives it (pgvector's Vector in binary mode, or an array)."""
    return v.to_numpy() if hasattr(v, "to_numpy") else np.asarray(v, dtype=np.float32)


def write_layout(conn: psycopg.Connection, model: str, ids: np.ndarray,
                 positions: np.ndarray, seed: int = 0) -> None:
    """Replace the model's map with these positions, in one transaction."""
    ranks = np.random.default_rng(seed).permutation(len(ids))
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('pgallery.painting_map'))")
        conn.execute("DELETE FROM painting_map WHERE model = %s", (model,))
        with conn.cursor().copy("COPY painting_map (model, painting_id, x, y, sample_rank,"
                                " placed_by) FROM STDIN") as copy:
            for pid, (x, y), rank in zip(ids.tolist(), positions.tolist(), ranks.tolist()):
                copy.write_row((model, pid, x, y, rank, "layout"))
    with conn.transaction():
        conn.execute("ANALYZE painting_map")


def full_layout(conn: psycopg.Connection, model: str | None = None, *,
                method: str = "neighbours", seed: int = 0,
                progress: Callable[[str, int, int], None] | None = None) -> LayoutSummary:
    """Lay out every painting of ``model`` (the active one by default) afresh."""
    started = time.perf_counter()
    name = resolve_model(conn, model)
    ids, X = read_vectors(conn, name,
                          (lambda d, t: progress("read", d, t)) if progress else None)
    if not len(ids):
        raise ArgError(f"model {name} has no vectors to lay out: load paintings first")
    positions = layouts.layout(X, method, seed=seed, progress=progress)
    write_layout(conn, name, ids, positions, seed)
    return LayoutSummary(name, len(ids), method, time.perf_counter() - started)


def place_new(conn: psycopg.Connection, model: str | None = None) -> int:
    """Place the model's paintings that have no place yet (SQL place_on_map): how many."""
    with conn.transaction():
        return conn.execute("SELECT place_on_map(%s)", (model,)).fetchone()[0]


STATUS_SQL = """
SELECT count(*) AS vectors,
       count(*) FILTER (WHERE m.placed_by = 'layout') AS laid_out,
       count(*) FILTER (WHERE m.placed_by = 'neighbours') AS placed,
       count(*) FILTER (WHERE m.painting_id IS NULL) AS unplaced
FROM painting_embedding e
LEFT JOIN painting_map m ON m.model = e.model AND m.painting_id = e.painting_id
WHERE e.model = %s
"""


def status(conn: psycopg.Connection, model: str | None = None) -> MapStatus:
    name = resolve_model(conn, model)
    row = conn.execute(STATUS_SQL, (name,)).fetchone()
    _settled(conn)
    return MapStatus(name, *row)


# After a load, a model without a map gets its first layout when it has at most this many
# paintings (about a minute at 20,000 on two cores, bench/README.md "The map"); a larger
# one is told to run `pgallery map layout`, which shows its progress.
AUTO_LAYOUT_ROWS = 20_000
# Placed paintings beyond this share of the map: the note suggests a full layout.
RELAYOUT_SHARE = 0.25


def after_load(conn: psycopg.Connection) -> list[str]:
    """The map's after-load step for the active model: its first layout, or the new
    paintings placed beside their neighbours. Returns notes for the load's summary."""
    try:
        model = conn.execute("SELECT name FROM embedding_model WHERE is_active").fetchone()
        if model is None:
            return []
        current = status(conn, model[0])
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction):
        if not conn.autocommit:
            conn.rollback()
        return []                            # a database not migrated to 0015
    if current.unplaced == 0:
        return []
    if current.laid_out == 0:
        if current.vectors > AUTO_LAYOUT_ROWS:
            return [f"the map of {current.vectors:,} paintings is not laid out yet: run "
                    "`pgallery map layout` (a few minutes)"]
        summary = full_layout(conn, current.model)
        return [f"laid out the map of {summary.paintings:,} paintings in "
                f"{summary.seconds:.1f} s (`pgallery serve`: /explore)"]
    placed = place_new(conn, current.model)
    notes = [f"placed {placed:,} new paintings on the map beside their nearest neighbours"]
    if current.placed + placed > RELAYOUT_SHARE * current.laid_out:
        notes.append(f"{current.placed + placed:,} paintings were placed after the last "
                     f"layout of {current.laid_out:,}: "
                     "`pgallery map layout` lays it out afresh")
    return notes
