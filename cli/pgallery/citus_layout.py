"""How pgallery's tables are spread over a Citus cluster, and the step that spreads them.

The migration runner takes this step after every migration command (alembic/env.py calls
distribute()); on a server without the `citus` extension, or on a Citus node that is not
the coordinator, or on a coordinator with no workers, it does nothing. It is idempotent:
a table already laid out is left alone, so every `pgallery migrate` ends with the layout
below whatever revisions ran before it (docs/scale-out.md, "Citus"):

    sharded by painting_id, co-located   painting_embedding, painting_embedding_half
    reference (a copy on every node)     painting, embedding_model, prompt_embedding,
                                         embedding_failure, index_tuning, painting_palette,
                                         painting_map
    local to the coordinator             alembic_version

Why this layout: the vectors are almost all of the bytes (4 kB + 2 kB a painting, against a
few hundred of metadata) and all of a search's work, so they are what is sharded, each
shard with its own HNSW index; the metadata is read by every filtered search on every
shard, so each node has all of it and the filter is checked in the shard's own join. The
loader's upsert is keyed by image_file, which a sharded painting could only enforce if it
were sharded by image_file, and painting_embedding joins it by painting_id: a reference
painting keeps both. The compact copy is sharded with its vectors so that the loader's
fill and the exact path stay within each shard.

What Citus cannot take as a single server has it, and what replaces it here:
  - the compact copy's statement triggers (with transition tables): dropped; the layer's
    merge_staged_paintings fills the copy itself when painting_embedding is sharded;
  - the palette's histogram trigger: dropped; the loader and the backfill send the
    histogram with the colours;
  - a foreign key with ON UPDATE CASCADE on the distribution column (the compact copy's):
    recreated with ON DELETE CASCADE only (nothing of pgallery's renames a vector's key);
  - functions the shards' queries call (painting_matches, like_pattern, the generated
    columns' parse_year_range and prompt_key, duplicate_signature): made distributed
    functions, so that they and their later replacements exist on every worker.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

REFERENCE_TABLES = ("embedding_model", "painting", "prompt_embedding", "embedding_failure",
                    "index_tuning", "painting_palette", "painting_map")
# (table, distribution column, co-located with)
SHARDED_TABLES = (("painting_embedding", "painting_id", None),
                  ("painting_embedding_half", "painting_id", "painting_embedding"))
# what the shards' own statements call; created by the layer or the baseline
WORKER_FUNCTIONS = ("like_pattern", "painting_matches", "has_filters", "parse_year_range",
                    "prompt_key", "duplicate_signature")
COMPACT_TRIGGERS = ("painting_embedding_half_insert", "painting_embedding_half_update")
# (table, trigger) of the layer that a Citus table cannot keep; the layer does not create
# them there (78_compact_vectors.sql, 26_search_by_colour.sql)
CITUS_REFUSED_TRIGGERS = (*(("painting_embedding", t) for t in COMPACT_TRIGGERS),
                          ("painting_palette", "painting_palette_histogram"))
# shards per worker when the database does not say (ALTER DATABASE ... SET
# citus.shard_count): each search scans every shard, so a few per worker core is enough
# (docs/scale-out.md, "Citus": how many shards).
SHARDS_PER_WORKER = 4


def is_coordinator(conn: psycopg.Connection) -> bool:
    """A Citus coordinator with at least one worker (else there is nothing to spread)."""
    if conn.execute("SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')"
                    ).fetchone()[0]:
        return False
    return conn.execute(
        "SELECT citus_is_coordinator() AND EXISTS (SELECT FROM pg_dist_node"
        " WHERE groupid <> 0 AND noderole = 'primary' AND isactive)").fetchone()[0]


def _laid_out(conn, table: str) -> str | None:
    """'h' (sharded), 'n' (reference or Citus local) or None (a plain local table)."""
    row = conn.execute("SELECT partmethod::text FROM pg_dist_partition"
                       " WHERE logicalrelid = to_regclass(%s)", (table,)).fetchone()
    return row[0] if row else None


def _exists(conn, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def _is_reference(conn, table: str) -> bool:
    return conn.execute("SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid ="
                        " to_regclass(%s) AND repmodel = 't')", (table,)).fetchone()[0]


def _foreign_keys(conn, tables: list[str]) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of every foreign key from one of `tables`."""
    return conn.execute(
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)"
        " FROM pg_constraint c WHERE c.contype = 'f'"
        "   AND c.conrelid = ANY (SELECT to_regclass(t) FROM unnest(%s::text[]) AS t)"
        " ORDER BY 1, 2", (tables,)).fetchall()


def shard_count(conn) -> int:
    """The database's citus.shard_count if it sets one, else SHARDS_PER_WORKER per worker."""
    row = conn.execute(
        "SELECT split_part(entry, '=', 2)::integer FROM pg_db_role_setting s"
        " JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS entry"
        " WHERE d.datname = current_database() AND s.setrole = 0"
        "   AND entry LIKE 'citus.shard\\_count=%'").fetchone()
    if row:
        return row[0]
    workers = conn.execute("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0"
                           " AND noderole = 'primary'").fetchone()[0]
    return SHARDS_PER_WORKER * max(1, workers)


def pending(conn) -> list[str]:
    """The tables of the layout that exist and are not laid out yet."""
    wanted = [*REFERENCE_TABLES, *(t for t, _, _ in SHARDED_TABLES)]
    out = []
    for table in wanted:
        if not _exists(conn, table):
            continue
        method = _laid_out(conn, table)
        sharded = table in {t for t, _, _ in SHARDED_TABLES}
        if (sharded and method != "h") or (not sharded and not _is_reference(conn, table)):
            out.append(table)
    return out


def distribute(conn: psycopg.Connection) -> list[str]:
    """Lay out pgallery's tables on the Citus coordinator `conn` is connected to (in its
    transaction; the caller commits). Returns the tables it distributed now."""
    if not is_coordinator(conn):
        return []
    todo = pending(conn)
    functions = _undistributed_functions(conn)
    if not todo and not functions:
        return []
    # DDL on distributed tables and the data they copy, in one transaction: Citus then
    # needs one connection per worker rather than one per shard
    conn.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
    if todo:
        tables = [t for t in (*REFERENCE_TABLES, *(t for t, _, _ in SHARDED_TABLES))
                  if _exists(conn, t)]
        # Foreign keys between tables of different kinds block converting them one by
        # one: they go, and come back (as they were, but for the compact copy's ON
        # UPDATE CASCADE) once every table has its kind.
        keys = _foreign_keys(conn, tables)
        for table, name, _ in keys:
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)))
        for table, trigger in CITUS_REFUSED_TRIGGERS:
            # only one that is there: Citus refuses even DROP TRIGGER IF EXISTS on a table
            # it has sharded already (a later revision's new table being laid out)
            if _exists(conn, table) and conn.execute(
                    "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger"
                    " WHERE tgrelid = to_regclass(%s) AND tgname = %s)",
                    (table, trigger)).fetchone()[0]:
                conn.execute(sql.SQL("DROP TRIGGER {} ON {}")
                             .format(sql.Identifier(trigger), sql.Identifier(table)))
        shards = shard_count(conn)
        for table in REFERENCE_TABLES:
            if table in todo:
                conn.execute("SELECT create_reference_table(%s)", (table,))
        for table, column, colocate in SHARDED_TABLES:
            if table in todo:
                if colocate is None:
                    conn.execute("SELECT create_distributed_table(%s, %s,"
                                 " shard_count => %s)", (table, column, shards))
                else:
                    conn.execute("SELECT create_distributed_table(%s, %s,"
                                 " colocate_with => %s)", (table, column, colocate))
        for table, name, definition in keys:
            if table == "painting_embedding_half":
                definition = definition.replace(" ON UPDATE CASCADE", "")
            conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)))
    for signature in _undistributed_functions(conn):
        conn.execute("SELECT create_distributed_function(%s)", (signature,))
    return todo


def _undistributed_functions(conn) -> list[str]:
    """WORKER_FUNCTIONS (every signature) that Citus does not yet keep on the workers."""
    return [row[0] for row in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY (%s)"
        "   AND NOT EXISTS (SELECT FROM pg_dist_object o WHERE o.classid = 'pg_proc'::regclass"
        "                   AND o.objid = p.oid)", (list(WORKER_FUNCTIONS),))]


def describe(conn: psycopg.Connection) -> list[tuple[str, str, int | None, str | None]]:
    """(table, kind, shards, distribution column) of pgallery's tables on a coordinator,
    for `pgallery db status`."""
    return conn.execute(
        "SELECT t.table_name::text, t.citus_table_type, t.shard_count::int,"
        "       nullif(t.distribution_column, '<none>')"
        " FROM citus_tables t ORDER BY t.citus_table_type DESC, 1").fetchall()
