"""The steps after a load, in one place: :func:`after_load` runs them after every load
that wrote vectors (images or an embeddings file) and after ``pgallery index build``:

1. put back the HNSW index an interrupted bulk load left dropped (restore_missing_hnsw);
2. ANALYZE painting and painting_embedding (the planner's estimates, and the vector count
   step 4 reads);
3. rebuild the IVFFlat index if there is one (its lists are trained on the data it was
   built from), or build it when asked (``pgallery index build``); build the probe index
   of new-vector queries from tuning.VECTOR_PROBE_MIN_ROWS vectors (rebuilt with the
   measurement below);
4. size the database's default hnsw.ef_search to the collection (tune_search_defaults);
5. the map (pgallery/map/store.py): the active model's first layout, or its new
   paintings placed beside their neighbours.

A new after-load step goes into after_load and nowhere else. Here too: the bulk load's
own index work around its batches (defer_hnsw_indexes before, restore_indexes after),
which builds with the memory build_memory.py gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from pgallery.loading.build_memory import build_memory, graph_bytes, human
from pgallery.map import store as map_store


@dataclass
class AfterLoad:
    """What the after-load steps did, for the load summary or the command's output."""

    notes: list[str] = field(default_factory=list)  # index rebuilt, build memory, ...
    ivfflat_rebuilt: bool = False
    ef_search_default: int | None = None   # the new database default, if it changed
    tuning: object | None = None           # tuning.TuningResult, if recall was measured
    map_notes: list[str] = field(default_factory=list)   # the map laid out, paintings placed


def after_load(conn: psycopg.Connection, *, build_ivfflat: bool = False,
               ivfflat_lists: int | None = None, tune: bool = True) -> AfterLoad:
    """Run the after-load steps (the module docstring) on ``conn``. ``build_ivfflat``:
    build the IVFFlat index even if there is none (with ``ivfflat_lists``, default from
    the row count), as ``pgallery index build`` does."""
    done = AfterLoad(notes=restore_missing_hnsw(conn))
    with _autocommit(conn):
        conn.execute("ANALYZE painting")
        conn.execute("ANALYZE painting_embedding")
        if not build_ivfflat:
            build_ivfflat = conn.execute(
                "SELECT to_regclass('painting_embedding_ivfflat') IS NOT NULL").fetchone()[0]
        if build_ivfflat:
            conn.execute("CALL build_ivfflat_index(%s)", (ivfflat_lists,))
        done.ivfflat_rebuilt = bool(build_ivfflat)
    done.ef_search_default = tune_search_defaults(conn)
    if tune:
        _measure_recall(conn, done)
    with _autocommit(conn):
        done.map_notes = map_store.after_load(conn)
    return done


def _measure_recall(conn: psycopg.Connection, done: AfterLoad) -> None:
    """After a load that changed the collection substantially, measure recall on it and
    make the result the database's default (tuning.py), within AFTER_LOAD_BUDGET seconds."""
    from pgallery import tuning

    with _autocommit(conn):
        try:
            needed = tuning.needs_tuning(conn)
        except psycopg.errors.UndefinedTable:      # a database not migrated to 0013
            return
        # the probe index of new-vector queries, built before the measurement so that it
        # measures what they are served; its lists are learned again when the collection
        # changed this much. The summary says so only if it could not be built (the
        # measurement's figures name it when it was).
        note = tuning.ensure_vector_probe(conn, rebuild=needed)
        if note and note.startswith(tuning.PROBE_NOT_BUILT):
            done.notes.append(note)
        if not needed:
            return
        before = conn.execute("SELECT current_setting('hnsw.ef_search', true)").fetchone()[0]
        result = tuning.tune_recall(conn, budget_seconds=tuning.AFTER_LOAD_BUDGET)
        tuning.record(conn, result)
    done.tuning = result
    if result.setting == "hnsw.ef_search" and result.chosen is not None \
            and str(result.chosen) != before:
        done.ef_search_default = result.chosen


# A load of at least this many rows that also at least doubles the table builds the HNSW
# index afterwards instead of inserting every row into the graph: CREATE INDEX with the
# server's maintenance_work_mem and parallel workers is many times faster than row-by-row
# graph inserts (bench/README.md, "Loading").
BULK_LOAD_ROWS = 5000

HNSW_INDEXES = """
SELECT c.relname, pg_get_indexdef(c.oid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = 'painting_embedding'::regclass AND am.amname = 'hnsw'
"""


@contextmanager
def _autocommit(conn: psycopg.Connection, *, end_open_transaction: bool = False
                ) -> Iterator[psycopg.Connection]:
    """Each statement its own transaction (index builds, ANALYZE, ALTER DATABASE), the
    connection's mode put back after. ``end_open_transaction``: roll back a transaction a
    failed load left open first (else switching mode raises)."""
    if end_open_transaction and \
            conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    previous = conn.autocommit
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.autocommit = previous


def defer_hnsw_indexes(conn: psycopg.Connection, incoming_rows: int) -> list[str]:
    """Before a bulk load: drop painting_embedding's HNSW indexes and return their
    definitions for restore_indexes(). Nothing is dropped for a small load, or when the
    role may not drop them (the index then stays and is maintained row by row)."""
    if incoming_rows < BULK_LOAD_ROWS:
        return []
    with _autocommit(conn):
        existing = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
        if incoming_rows < existing:
            return []
        definitions = []
        for name, definition in conn.execute(HNSW_INDEXES).fetchall():
            try:
                conn.execute(f'DROP INDEX "{name}"')
            except psycopg.errors.InsufficientPrivilege:
                continue
            definitions.append(definition)
        return definitions


def restore_indexes(conn: psycopg.Connection, definitions: list[str]) -> list[str]:
    """Recreate the indexes defer_hnsw_indexes() dropped (with their original definitions),
    with room for the whole graph where that is safe (build_memory.py). Returns notes for
    the user: the memory the build was given, or that the graph did not fit and how to
    give it more."""
    if not definitions:
        return []
    with _autocommit(conn, end_open_transaction=True):
        return _build_with_memory(conn, definitions)


def restore_missing_hnsw(conn: psycopg.Connection) -> list[str]:
    """After a load: build the HNSW index if an interrupted bulk load left it dropped
    (restore_hnsw_index() in sql/idempotent/), with the memory restore_indexes gives.
    Returns notes for the user (none when the index is there)."""
    with _autocommit(conn, end_open_transaction=True):
        if conn.execute(HNSW_INDEXES).fetchone() is not None:
            return []
        try:
            notes = _build_with_memory(conn, ["CALL restore_hnsw_index()"])
        except psycopg.errors.UndefinedFunction:    # a database not migrated to 0012
            return []
    return ["painting_embedding had no HNSW index (an interrupted bulk load?): rebuilt it",
            *notes]


def _build_with_memory(conn: psycopg.Connection, statements: list[str]) -> list[str]:
    """Run index builds (the connection in autocommit) with build_memory's maintenance_work_mem, putting
    the session's own back after; returns the notes restore_indexes describes."""
    notes: list[str] = []
    spilled: list[str] = []

    def on_notice(diag):
        if "no longer fits into maintenance_work_mem" in (diag.message_primary or ""):
            spilled.append(diag.message_primary)

    vectors = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]
    memory = build_memory(conn, vectors)
    before = conn.execute("SELECT current_setting('maintenance_work_mem')").fetchone()[0]
    if memory:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)",
                     (f"{memory // 1024}kB",))
        notes.append(f"the HNSW index was built with maintenance_work_mem {human(memory)} "
                     f"(its graph of {vectors:,} vectors needs about "
                     f"{human(graph_bytes(vectors))})")
    conn.add_notice_handler(on_notice)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.remove_notice_handler(on_notice)
        if memory:
            conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (before,))
    if spilled:
        setting = conn.execute("SHOW maintenance_work_mem").fetchone()[0]
        needed = human(graph_bytes(vectors))
        notes.append(
            f"the HNSW graph did not fit maintenance_work_mem ({setting}): pgvector built "
            f"it on disk, several times slower ({spilled[0]}). Next time give the build "
            f"about {needed}, e.g. PGOPTIONS='-c maintenance_work_mem={needed}' in front "
            "of the command")
    return notes


def tune_search_defaults(conn: psycopg.Connection) -> int | None:
    """After a load (and ANALYZE): size the database's default hnsw.ef_search to the
    collection (sql/idempotent/70_search_defaults.sql). Returns the new default if it
    differs from the one this session started with, else None."""
    with _autocommit(conn):
        try:
            new, before = conn.execute(
                "SELECT tune_search_defaults(), current_setting('hnsw.ef_search', true)"
            ).fetchone()
        except psycopg.errors.UndefinedFunction:   # a database not migrated to 0011
            return None
    return new if new is not None and str(new) != before else None
