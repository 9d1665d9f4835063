"""Index builds: HNSW and IVFFlat build time, size and recall per build setting.

With pgallery's server settings and with what a stock PostgreSQL gives a user.

    python bench/run.py index --size 100000

Builds run on a copy of bench_<n>'s vectors (table index_bench_vectors) so the search
benchmarks' index is left alone. Settings per variant are applied with SET for the build:
  pgallery   maintenance_work_mem 1GB, max_parallel_maintenance_workers 2 (embedded.py)
  stock      maintenance_work_mem 64MB, max_parallel_maintenance_workers 2 (PostgreSQL's)
  serial     maintenance_work_mem 1GB, no parallel workers (isolates the workers' share)
HNSW builds with pgallery's settings are also searched: recall@10 and p50 latency of the
raw query at ef_search 40 and 100 (100 queries against numpy's exact answer), so
ef_construction's effect on the graph shows next to its build time.
"""

from __future__ import annotations


import numpy as np

import benchdb
import datagen
from common import (connect, fmt_bytes, median, percentiles, print_table, recall_at_k,
                    recall_tails, stopwatch)

SETTINGS = {
    "pgallery": {"maintenance_work_mem": "1GB", "max_parallel_maintenance_workers": 2},
    "stock": {"maintenance_work_mem": "64MB", "max_parallel_maintenance_workers": 2},
    "serial": {"maintenance_work_mem": "1GB", "max_parallel_maintenance_workers": 0},
}
# pgallery's index shapes since migration 0009 (normalised half precision); results before
# 2026-11-29 were measured over the vector column itself
INDEXES = {
    "hnsw m=16 ef_construction=64": f"USING hnsw (({benchdb.INDEXED}) halfvec_cosine_ops) "
                                    "WITH (m = 16, ef_construction = 64)",
    "hnsw m=16 ef_construction=128": f"USING hnsw (({benchdb.INDEXED}) halfvec_cosine_ops) "
                                     "WITH (m = 16, ef_construction = 128)",
    "ivfflat lists=n/1000": f"USING ivfflat (({benchdb.INDEXED}) halfvec_cosine_ops) "
                            "WITH (lists = {lists})",
}


def build(conn, index_sql: str, settings: dict, lists: int) -> dict:
    conn.execute("DROP INDEX IF EXISTS index_bench_idx")
    for k, v in settings.items():
        conn.execute(f"SET {k} = '{v}'")
    conn.execute("CHECKPOINT")
    with stopwatch() as t:
        conn.execute("CREATE INDEX index_bench_idx ON index_bench_vectors "
                     + index_sql.format(lists=lists))
    size = conn.execute("SELECT pg_relation_size('index_bench_idx')").fetchone()[0]
    for k in settings:
        conn.execute(f"RESET {k}")
    return {"seconds": t(), "bytes": int(size)}


# built with pgallery's settings only (the other variants isolate memory and workers)
PGALLERY_ONLY = {"hnsw m=16 ef_construction=128"}
SEARCH_EF = (40, 100)
SEARCH = (f"SELECT painting_id FROM index_bench_vectors ORDER BY {benchdb.INDEXED} <=> "
          f"{benchdb.QUERY} LIMIT 10")


def search(conn, qs, truth) -> dict:
    """recall@10 and p50 of the raw query through the index just built, per ef_search."""
    out = {}
    for ef in SEARCH_EF:
        conn.execute(f"SET hnsw.ef_search = {ef}")
        for q in qs[:10]:                                  # warm the index's pages
            conn.execute(SEARCH, (q,), prepare=True).fetchall()
        times, got = [], []
        for q in qs:
            with stopwatch() as t:
                got.append([r[0] for r in conn.execute(SEARCH, (q,), prepare=True)])
            times.append(t())
        tails = recall_tails(recall_at_k(g, t) for g, t in zip(got, truth))
        latency = percentiles(times)
        out[f"recall_ef{ef}"] = tails["recall_mean"]
        out[f"recall_p5_ef{ef}"] = tails["recall_p5"]
        out[f"lost_share_ef{ef}"] = tails["lost_share"]
        out[f"p50_ms_ef{ef}"] = latency["p50_ms"]
        out[f"p95_ms_ef{ef}"] = latency["p95_ms"]
    conn.execute("RESET hnsw.ef_search")
    return out


DEFAULTS = {"size": 100_000, "runs": 1, "variants": "pgallery,stock,serial"}
QUICK = {"variants": "pgallery"}


def run(ctx) -> dict:
    a = ctx.params
    db = benchdb.ensure(a.size)
    conn = connect(db["url"], autocommit=True)
    conn.execute("DROP TABLE IF EXISTS index_bench_vectors")
    conn.execute("CREATE TABLE index_bench_vectors AS SELECT painting_id, embedding "
                 "FROM painting_embedding")
    conn.execute("VACUUM ANALYZE index_bench_vectors")
    rows = []
    lists = max(1, a.size // 1000)
    qs = datagen.queries(100)
    ids = benchdb.painting_ids(conn, a.size)
    truth = [list(ids[r]) for r in datagen.exact_top_k(datagen.dataset(a.size).vectors, qs, 10)]
    for index_name, index_sql in INDEXES.items():
        for variant in a.variants.split(","):
            if index_name in PGALLERY_ONLY and variant != "pgallery":
                continue
            runs = [build(conn, index_sql, SETTINGS[variant], lists) for _ in range(a.runs)]
            row = {"index": index_name, "settings": variant,
                   "maintenance_work_mem": SETTINGS[variant]["maintenance_work_mem"],
                   "workers": SETTINGS[variant]["max_parallel_maintenance_workers"],
                   "seconds": median([r["seconds"] for r in runs]),
                   "size": fmt_bytes(runs[0]["bytes"]), "bytes": runs[0]["bytes"],
                   "runs": a.runs}
            if index_name.startswith("hnsw") and variant == "pgallery":
                row |= search(conn, qs, truth)
            rows.append(row)
            print(f"  {index_name} [{variant}]: {row['seconds']:.1f}s, {row['size']}",
                  flush=True)
    conn.execute("DROP TABLE index_bench_vectors")
    table_bytes = conn.execute("SELECT pg_total_relation_size('painting_embedding')"
                               ).fetchone()[0]
    conn.close()
    for r in rows:
        base = next(x for x in rows if x["index"] == r["index"] and x["settings"] == "pgallery")
        r["vs_pgallery"] = r["seconds"] / base["seconds"]
    print_table(f"index builds on {a.size:,} x 1024-d vectors", rows,
                ["index", "settings", "maintenance_work_mem", "workers", "seconds",
                 "vs_pgallery", "size"] + [f"{m}_ef{ef}" for ef in SEARCH_EF
                                           for m in ("recall", "p50_ms")])
    return {"distribution": "datagen", "rows": rows,
            "painting_embedding_total_bytes": int(table_bytes)}

