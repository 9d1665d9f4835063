"""Storage and precision trade-offs: the `vector` HNSW index against a `halfvec` one and
binary quantization with exact re-ranking; and the embedding column in TOAST (pgvector's
default: a 4 KB vector is moved out of line) against STORAGE PLAIN (kept in the heap row,
what migration 0002 sets).

    python bench/storage_bench.py --size 100000

For each variant: build time, index size, recall@10 against exact float32 brute force,
and p50/p95 of the raw query, measured query by query side by side in one pass.
Writes bench/results/storage_<n>.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import benchdb
import datagen
from common import (connect, fmt_bytes, median, percentiles, print_table, recall_at_k,
                    server_facts, stopwatch, write_result)

BUILDS = {
    "halfvec": ("CREATE INDEX storage_bench_halfvec ON painting_embedding USING hnsw "
                "((embedding::halfvec(1024)) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)",
                "storage_bench_halfvec"),
    "binary": ("CREATE INDEX storage_bench_bit ON painting_embedding USING hnsw "
               "((binary_quantize(embedding)::bit(1024)) bit_hamming_ops) "
               "WITH (m = 16, ef_construction = 64)", "storage_bench_bit"),
    "toast": ("CREATE INDEX storage_bench_toast_hnsw ON embedding_toast USING hnsw "
              "(embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
              "storage_bench_toast_hnsw"),
}
# What a search reads: ids, distance and the painting's row (as nearest_paintings does).
QUERIES = {
    "vector, PLAIN":
        "SELECT e.painting_id, e.embedding <=> %(q)s AS d, p.title FROM painting_embedding e "
        "JOIN painting p USING (painting_id) ORDER BY e.embedding <=> %(q)s LIMIT 10",
    "vector, TOAST":
        "SELECT e.painting_id, e.embedding <=> %(q)s AS d, p.title FROM embedding_toast e "
        "JOIN painting p USING (painting_id) ORDER BY e.embedding <=> %(q)s LIMIT 10",
    "halfvec index":
        "SELECT e.painting_id, e.embedding <=> %(q)s AS d, p.title FROM painting_embedding e "
        "JOIN painting p USING (painting_id) "
        "ORDER BY e.embedding::halfvec(1024) <=> %(q)s::halfvec(1024) LIMIT 10",
    "halfvec + exact re-rank of 40":
        "SELECT c.painting_id, c.d, p.title FROM (SELECT painting_id, embedding <=> %(q)s AS d "
        "FROM (SELECT painting_id, embedding FROM painting_embedding "
        "ORDER BY embedding::halfvec(1024) <=> %(q)s::halfvec(1024) LIMIT 40) s "
        "ORDER BY d LIMIT 10) c JOIN painting p USING (painting_id) ORDER BY c.d",
    "binary + exact re-rank of ef":
        "SELECT c.painting_id, c.d, p.title FROM (SELECT painting_id, embedding <=> %(q)s AS d "
        "FROM (SELECT painting_id, embedding FROM painting_embedding "
        "ORDER BY binary_quantize(embedding)::bit(1024) <~> binary_quantize(%(q)s) "
        "LIMIT %(ef)s) s ORDER BY d LIMIT 10) c JOIN painting p USING (painting_id) ORDER BY c.d",
}
EXACT = {
    "exact scan, TOAST": "SELECT painting_id FROM embedding_toast "
                         "ORDER BY (embedding <=> %(q)s) + 0 LIMIT 10",
    "exact scan, PLAIN": "SELECT painting_id FROM painting_embedding "
                         "ORDER BY (embedding <=> %(q)s) + 0 LIMIT 10",
    "exact over 2,000 ids, TOAST": "SELECT painting_id FROM embedding_toast "
                                   "WHERE painting_id = ANY(%(ids)s) "
                                   "ORDER BY (embedding <=> %(q)s) + 0 LIMIT 10",
    "exact over 2,000 ids, PLAIN": "SELECT painting_id FROM painting_embedding "
                                   "WHERE painting_id = ANY(%(ids)s) "
                                   "ORDER BY (embedding <=> %(q)s) + 0 LIMIT 10",
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--ef", default="40,100,200")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the extra indexes and table")
    a = p.parse_args(argv)
    db = benchdb.ensure(a.size)
    ds = datagen.dataset(a.size)
    qs = datagen.queries(a.queries)
    conn = connect(db["url"], autocommit=True)
    facts = server_facts(conn)
    ids = benchdb.painting_ids(conn, a.size)
    truth = [list(ids[r]) for r in datagen.exact_top_k(ds.vectors, qs, 10)]

    builds = {"vector, PLAIN": {
        "bytes": conn.execute("SELECT pg_relation_size('painting_embedding_hnsw')").fetchone()[0],
        "seconds": db.get("hnsw_build_s")}}
    storage = conn.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = "
                           "'painting_embedding'::regclass AND attname = 'embedding'").fetchone()[0]
    # the side table takes the other storage; painting_embedding has the product's
    mine, other = ("PLAIN", "EXTERNAL") if storage == "p" else ("EXTERNAL", "PLAIN")
    print(f"  painting_embedding.embedding is {mine}; the copy is {other}")
    conn.execute("DROP TABLE IF EXISTS embedding_toast")
    with stopwatch() as t:
        conn.execute("CREATE TABLE embedding_toast (painting_id bigint PRIMARY KEY, "
                     f"embedding vector(1024) STORAGE {other})")
        conn.execute("INSERT INTO embedding_toast SELECT painting_id, embedding "
                     "FROM painting_embedding")
    copy_s = t()
    conn.execute("VACUUM ANALYZE embedding_toast")
    table_sizes = {
        "TOAST": conn.execute("SELECT pg_table_size('embedding_toast')").fetchone()[0],
        "PLAIN": conn.execute("SELECT pg_table_size('painting_embedding')").fetchone()[0]}
    conn.execute("SET maintenance_work_mem = '1GB'")
    for key, (sql, name) in BUILDS.items():
        conn.execute(f"DROP INDEX IF EXISTS {name}")
        with stopwatch() as t:
            conn.execute(sql)
        label = {"halfvec": "halfvec index", "binary": "binary + exact re-rank of ef",
                 "toast": "vector, TOAST"}[key]
        builds[label] = {"seconds": t(),
                         "bytes": conn.execute(f"SELECT pg_relation_size('{name}')").fetchone()[0]}
        print(f"  built {label}: {builds[label]['seconds']:.1f}s, "
              f"{fmt_bytes(builds[label]['bytes'])}", flush=True)
    builds["halfvec + exact re-rank of 40"] = builds["halfvec index"]
    conn.execute("ANALYZE")

    rows = []
    for ef in [int(x) for x in a.ef.split(",")]:
        conn.execute(f"SET hnsw.ef_search = {ef}")
        times = {k: [[] for _ in range(a.runs + 1)] for k in QUERIES}
        got = {k: [] for k in QUERIES}
        for run in range(a.runs + 1):
            for q in qs:
                for name, sql in QUERIES.items():
                    with stopwatch() as t:
                        res = conn.execute(sql, {"q": q, "ef": ef}, prepare=True).fetchall()
                    times[name][run].append(t())
                    if run == 1:
                        got[name].append([r[0] for r in res])
        for name in QUERIES:
            stats = [percentiles(x) for x in times[name][1:]]
            b = builds.get(name, {})
            rows.append({"variant": name, "ef_search": ef,
                         "recall@10": float(np.mean([recall_at_k(g, t)
                                                     for g, t in zip(got[name], truth)])),
                         "p50_ms": median([s["p50_ms"] for s in stats]),
                         "p95_ms": median([s["p95_ms"] for s in stats]),
                         "build_s": b.get("seconds"), "index_size": fmt_bytes(b.get("bytes", 0)),
                         "index_bytes": b.get("bytes")})
        print_table(f"ef_search = {ef}", [r for r in rows if r["ef_search"] == ef],
                    ["variant", "recall@10", "p50_ms", "p95_ms", "build_s", "index_size"])

    exact_rows = []
    # 2,000 scattered paintings read by primary key: the pre-filter path's access pattern
    scattered = [int(x) for x in np.random.default_rng(3).choice(ids, 2000, replace=False)]
    conn.execute("SET max_parallel_workers_per_gather = 0")
    for name, sql in EXACT.items():
        samples = []
        for run in range(a.runs + 1):
            ts = []
            for q in qs[:10]:
                with stopwatch() as t:
                    conn.execute(sql, {"q": q, "ids": scattered}, prepare=True).fetchall()
                ts.append(t())
            if run:
                samples.append(percentiles(ts)["p50_ms"])
        exact_rows.append({"query": name, "p50_ms": median(samples)})
    conn.execute("RESET max_parallel_workers_per_gather")
    print_table("exact distance scans (no parallel workers)", exact_rows)
    print(f"\ntable size: TOAST {fmt_bytes(table_sizes['TOAST'])}, "
          f"PLAIN {fmt_bytes(table_sizes['PLAIN'])}; copying into TOAST took {copy_s:.1f}s")
    if storage != "p":
        # the queries name painting_embedding PLAIN and the copy TOAST: swap the labels
        swap = {"PLAIN": "TOAST", "TOAST": "PLAIN"}
        for r in rows + exact_rows:
            key = "variant" if "variant" in r else "query"
            for word in ("PLAIN", "TOAST"):
                if word in r[key]:
                    r[key] = r[key].replace(word, swap[word])
                    break
        table_sizes = {"TOAST": table_sizes["PLAIN"], "PLAIN": table_sizes["TOAST"]}
        print("(labels swapped: painting_embedding is EXTERNAL/TOAST, the copy PLAIN)")
    if not a.keep:
        for _, name in BUILDS.values():
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute("DROP TABLE embedding_toast")
    conn.close()
    payload = {"size": a.size, "queries": a.queries, "server": facts, "rows": rows,
               "exact": exact_rows, "table_bytes": table_sizes, "builds": builds}
    write_result(f"storage_{a.size}", payload)
    return payload


if __name__ == "__main__":
    main()
