"""The loaded benchmark database ``bench_<n>``: the synthetic dataset written through
pgallery's own loader (staging COPY + merge), the HNSW index built after the load with
the migration's parameters, ANALYZEd, and the query prompts cached for search_by_text.

Built once per size and reused by the search, filters, index, exact, duplicates and web
benchmarks (the search benchmark's ``rebuild`` parameter forces a fresh one).
"""

from __future__ import annotations

import time

import numpy as np

import datagen
from common import MODEL, connect, database_exists, fresh_database, server_url
from pgallery import migrations
from pgallery.loading.after_load import tune_search_defaults

# pgallery's ANN indexes are built on this expression (migration 0009); a raw query uses
# them with ORDER BY INDEXED <=> QUERY (the query vector cast the same way).
INDEXED = "l2_normalize(embedding)::halfvec(1024)"
QUERY = "l2_normalize(%s::vector)::halfvec(1024)"


def records(ds: datagen.Dataset, start: int, stop: int):
    from pgallery.loading.records import PaintingRecord

    return [PaintingRecord(
        image_file=ds.image_file(i), title=f"Painting {i}", author=ds.value("author", i),
        technique=ds.value("technique", i), date=str(int(ds.years[i])),
        painting_type=ds.value("painting_type", i), school=ds.value("school", i),
        timeframe=ds.value("timeframe", i), description=f"A painting, study {i}.",
        embedding=np.asarray(ds.vectors[i]),
    ) for i in range(start, stop)]


def prompt(i: int) -> str:
    return f"bench prompt {i}"


def ensure(n: int, rebuild: bool = False, log=print) -> dict:
    """The URL of bench_<n> (loaded and indexed), and how long building it took."""
    name = f"bench_{n}"
    url = server_url(name)
    if not rebuild and database_exists(name):
        with connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM painting_embedding").fetchone()
            done = conn.execute("SELECT to_regclass('painting_embedding_hnsw') IS NOT NULL"
                                ).fetchone()[0]
        if row[0] == n and done:
            migrations.upgrade(url)          # a database built at an older head
            with connect(url) as conn:
                store_prompts(conn)
                tune_search_defaults(conn)
            return {"url": url, "reused": True}
    from pgallery.loading.after_load import defer_hnsw_indexes, restore_indexes
    from pgallery.loading.writer import register_model, write_batch

    ds = datagen.dataset(n)
    url = fresh_database(name)
    facts = {"url": url, "reused": False}
    with connect(url, autocommit=True) as conn:
        hnsw = defer_hnsw_indexes(conn, n)  # as a bulk load does: build once at the end
    with connect(url) as conn:
        register_model(conn, MODEL, datagen.DIM, "bench")
        t = time.perf_counter()
        for start in range(0, n, 5000):
            write_batch(conn, MODEL, records(ds, start, min(n, start + 5000)), start)
            log(f"  loaded {min(n, start + 5000):,}/{n:,}", end="\r")
        facts["load_s"] = time.perf_counter() - t
        store_prompts(conn)
    with connect(url, autocommit=True) as conn:
        # the graph must fit maintenance_work_mem or pgvector builds on disk, many times
        # slower: ~8.5 kB a row at m = 16 (1GB, the server's setting, covers ~120k rows)
        needed_mb = max(1024, int(n * 8.5 / 1024 * 1.1))
        facts["maintenance_work_mem_mb"] = needed_mb
        conn.execute(f"SET maintenance_work_mem = '{needed_mb}MB'")
        t = time.perf_counter()
        restore_indexes(conn, hnsw)
        facts["hnsw_build_s"] = time.perf_counter() - t
        conn.execute("VACUUM ANALYZE")
        tune_search_defaults(conn)           # the default ef_search a load would set
    log(f"  bench_{n}: loaded in {facts['load_s']:.1f}s, HNSW built in "
        f"{facts['hnsw_build_s']:.1f}s")
    return facts


def ensure_ivfflat_copy(n: int, log=print) -> dict:
    """bench_<n>_ivfflat: a copy of bench_<n> (built first) whose HNSW index is replaced by
    the IVFFlat one `pgallery index build` makes, for sweeping ivfflat.probes."""
    from psycopg import sql

    name, source = f"bench_{n}_ivfflat", f"bench_{n}"
    url = server_url(name)
    if database_exists(name):
        with connect(url) as conn:
            kinds = {row[0] for row in conn.execute(
                "SELECT am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_am am ON am.oid = c.relam"
                " WHERE i.indrelid = 'painting_embedding'::regclass")}
        if "ivfflat" in kinds and "hnsw" not in kinds:
            return {"url": url, "reused": True}
    with connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        # a template copies the files, not the database's settings (ALTER DATABASE SET)
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(source)))
        for setting, value in admin.execute(
                "SELECT split_part(e, '=', 1), split_part(e, '=', 2)"
                " FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,"
                " unnest(s.setconfig) e WHERE d.datname = %s AND s.setrole = 0",
                (source,)).fetchall():
            admin.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(name), sql.Identifier(*setting.split(".")),
                sql.Literal(value)))
    with connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX painting_embedding_hnsw")
        t = time.perf_counter()
        conn.execute("CALL build_ivfflat_index()")
        build_s = time.perf_counter() - t
        conn.execute("ANALYZE painting_embedding")
        lists = conn.execute("SELECT reloptions FROM pg_class"
                             " WHERE relname = 'painting_embedding_ivfflat'").fetchone()[0]
    log(f"  {name}: IVFFlat {lists} built in {build_s:.1f}s")
    return {"url": url, "reused": False, "ivfflat_build_s": build_s, "ivfflat": lists}


def store_prompts(conn, count: int = 200) -> None:
    """Cache query i's vector as the embedding of prompt(i), for search_by_text/hybrid."""
    with conn.transaction():
        conn.execute("DELETE FROM prompt_embedding WHERE model = %s", (MODEL,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO prompt_embedding (model, prompt, embedding) VALUES (%s, %s, %s)",
                [(MODEL, prompt(i), q) for i, q in enumerate(datagen.queries(count))])


def painting_ids(conn, n: int) -> np.ndarray:
    """painting_id of dataset row i (rows were loaded in order, but ask the database)."""
    ids = np.zeros(n, dtype=np.int64)
    for pid, image_file in conn.execute("SELECT painting_id, image_file FROM painting"):
        ids[int(image_file[6:13])] = pid
    return ids
