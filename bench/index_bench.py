"""Index builds: HNSW and IVFFlat build time and size, with pgallery's server settings and
with what a stock PostgreSQL gives a user.

    python bench/index_bench.py --size 100000

Builds run on a copy of bench_<n>'s vectors (table index_bench_vectors) so the search
benchmarks' index is left alone. Settings per variant are applied with SET for the build:
  pgallery   maintenance_work_mem 1GB, max_parallel_maintenance_workers 2 (embedded.py)
  stock      maintenance_work_mem 64MB, max_parallel_maintenance_workers 2 (PostgreSQL's)
  serial     maintenance_work_mem 1GB, no parallel workers (isolates the workers' share)
Writes bench/results/index_<n>.json.
"""

from __future__ import annotations

import argparse

import benchdb
from common import (connect, fmt_bytes, median, print_table, server_facts, stopwatch,
                    write_result)

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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--variants", default="pgallery,stock,serial")
    a = p.parse_args(argv)
    db = benchdb.ensure(a.size)
    conn = connect(db["url"], autocommit=True)
    facts = server_facts(conn)
    conn.execute("DROP TABLE IF EXISTS index_bench_vectors")
    conn.execute("CREATE TABLE index_bench_vectors AS SELECT painting_id, embedding "
                 "FROM painting_embedding")
    conn.execute("VACUUM ANALYZE index_bench_vectors")
    rows = []
    lists = max(1, a.size // 1000)
    for index_name, index_sql in INDEXES.items():
        for variant in a.variants.split(","):
            runs = [build(conn, index_sql, SETTINGS[variant], lists) for _ in range(a.runs)]
            row = {"index": index_name, "settings": variant,
                   "maintenance_work_mem": SETTINGS[variant]["maintenance_work_mem"],
                   "workers": SETTINGS[variant]["max_parallel_maintenance_workers"],
                   "seconds": median([r["seconds"] for r in runs]),
                   "size": fmt_bytes(runs[0]["bytes"]), "bytes": runs[0]["bytes"],
                   "runs": a.runs}
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
                 "vs_pgallery", "size"])
    payload = {"size": a.size, "server": facts, "rows": rows,
               "painting_embedding_total_bytes": int(table_bytes)}
    write_result(f"index_{a.size}", payload)
    return payload


if __name__ == "__main__":
    main()
