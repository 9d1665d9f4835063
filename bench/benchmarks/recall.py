"""Recall tails per distribution: pgallery's HNSW index beside hnswlib and FAISS.

recall@10 on several kinds of data, with its tail, for pgvector's HNSW (pgallery's index
shape and variants of it) beside hnswlib and FAISS built with the same M /
ef_construction and searched with the same ef values, in the same run.

    python bench/run.py recall --size 20000 --set dist=clustered,datagen,real

Data (bench/lib/hard_data.py): ``datagen`` (the mixture the defaults were tuned on), ``clustered``
(64 anisotropic Gaussian clusters, power-law sizes, queries = stored vectors + noise),
``clustered-sorted`` (the same, bulk-loaded cluster by cluster), ``real`` (the real
gallery + transformed copies embedded with `local`, leave-one-out queries + crops).

Every row reports the mean recall@10, its 5th percentile, the share of queries under 0.5
and the number at 0, and the client-observed p50 latency (psycopg, prepared, one round
trip; the libraries' is a Python call on one thread). pgvector variants are separate
tables in one database, each with one index, so the planner has no choice to make and
every variant is searched in the same pass, query by query, interleaved.

pgvector variants (``--set variants=...``; the first is pgallery's index since migration 0009):
    half-16-64     hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)
                   WITH (m = 16, ef_construction = 64)
    vector-16-64   hnsw (embedding vector_cosine_ops), full precision, same m/efc
    half-M-EFC     the half-precision shape with other build parameters
Queries run as the search function's unfiltered statement does: hnsw.iterative_scan =
relaxed_order (``--set iterative=off`` or ``strict_order`` to compare), enable_sort off.

The result holds, per distribution, the per-setting table and the per-query recalls of
the first variant (pgallery's index), so the lost queries can be looked at.
"""

from __future__ import annotations

import re

import numpy as np

import hard_data
from common import connect, fresh_database, percentiles, print_table, stopwatch

K = 10
M, EF_CONSTRUCTION = 16, 64


def tail(recalls) -> dict:
    """mean, 5th percentile, share under 0.5 and count at 0 of per-query recall@10."""
    r = np.asarray(recalls, dtype=float)
    return {"mean": float(r.mean()), "p5": float(np.percentile(r, 5)),
            "share_lt_0.5": float((r < 0.5).mean()), "zero": int((r == 0).sum())}


def recalls_of(got, truth) -> list[float]:
    return [len(set(g[:K]) & set(t[:K])) / K for g, t in zip(got, truth)]


# -- pgvector ----------------------------------------------------------------------------------

def variant_sql(name: str) -> tuple[str, str, str]:
    """(index clause, ORDER BY expression, query expression) of a variant name."""
    m = re.fullmatch(r"(half|vector)-(\d+)-(\d+)(\.\w+)?((\+\w+)*)", name)  # ".b": a 2nd build
    if not m:
        raise ValueError(name)
    kind, mm, efc = m.group(1), int(m.group(2)), int(m.group(3))
    if kind == "half":
        expr = "l2_normalize(embedding)::halfvec(1024)"
        return (f"USING hnsw (({expr}) halfvec_cosine_ops) WITH (m = {mm}, "
                f"ef_construction = {efc})", expr, "l2_normalize(%s::vector)::halfvec(1024)")
    return (f"USING hnsw (embedding vector_cosine_ops) WITH (m = {mm}, ef_construction = {efc})",
            "embedding", "%s::vector")


def table_of(variant: str) -> str:
    return "v_" + re.sub(r"[^a-z0-9]", "_", variant)


def load_pg(coll: hard_data.Collection, variants: list[str], dbname: str, log=print) -> dict:
    """One table per variant (rows in the collection's order: id = row index), indexed."""
    url = fresh_database(dbname, migrate=False)
    builds = {}
    with connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    with connect(url, autocommit=True) as conn:            # now with the vector type
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute("CREATE TABLE base (id integer PRIMARY KEY, embedding vector(1024))")
        with conn.cursor() as cur:
            with cur.copy("COPY base (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.set_types(["int4", "vector"])
                for i, v in enumerate(coll.vectors):
                    cp.write_row((i, v))
        for name in variants:
            table = table_of(name)
            index, _, _ = variant_sql(name)
            # +shuffle: the rows in random order on disk, so the build inserts them in
            # random order (CREATE INDEX reads the heap in order); otherwise load order
            order = "md5(id::text)" if "+shuffle" in name else "id"
            with stopwatch() as t:
                conn.execute(f"CREATE TABLE {table} AS SELECT * FROM base ORDER BY {order}")
            builds[name + " (table copy)"] = t()
            conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
            # +serial: no parallel workers (the server's default is 2)
            workers = 0 if "+serial" in name else 2
            conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
            with stopwatch() as t:
                conn.execute(f"CREATE INDEX ON {table} {index}")
            builds[name] = t()
            conn.execute(f"VACUUM ANALYZE {table}")
            log(f"  {coll.name}: {name} built in {builds[name]:.1f}s", flush=True)
    return {"url": url, "build_s": builds}


def search_pg(url: str, coll, variants: list[str], efs: list[int], iterative: str,
              runs: int, buffers: bool = False) -> dict:
    """(variant, ef) -> (ids per query, p50 ms); every variant asked each query in turn."""
    conns = {v: connect(url, autocommit=True) for v in variants}
    stmts = {}
    for v, conn in conns.items():
        _, expr, qexpr = variant_sql(v)
        table = table_of(v)
        conn.execute(f"SET hnsw.iterative_scan = {iterative}")
        conn.execute("SET enable_sort = off")
        stmts[v] = (f"SELECT id FROM {table} WHERE id <> %s "
                    f"ORDER BY {expr} <=> {qexpr} LIMIT {K}")
    out = {}
    for ef in efs:
        for conn in conns.values():
            conn.execute(f"SET hnsw.ef_search = {ef}")
        times = {v: [] for v in variants}
        got = {v: [] for v in variants}
        for run in range(runs + 1):                      # run 0 warms caches and plans
            for qi, q in enumerate(coll.queries):
                ex = int(coll.exclude[qi])
                turn = variants[qi % len(variants):] + variants[:qi % len(variants)]
                for v in turn:                          # no variant always first
                    with stopwatch() as t:
                        rows = conns[v].execute(stmts[v], (ex, q), prepare=True).fetchall()
                    if run:
                        times[v].append(t())
                    if run == 1:
                        got[v].append([r[0] for r in rows])
        for v in variants:
            out[(v, ef)] = (got[v], percentiles(times[v])["p50_ms"])
        if buffers:
            # the work, free of the shared machine's noise: index + heap pages touched
            # (shared hit + read) and execution time inside PostgreSQL, one pass
            for v in variants:
                pages, server = [], []
                for qi, q in enumerate(coll.queries):
                    plan = conns[v].execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) "
                                            + stmts[v], (int(coll.exclude[qi]), q)).fetchone()[0][0]
                    pages.append(plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"])
                    server.append(plan["Execution Time"])
                out[(v, ef)] += (float(np.median(pages)), float(np.median(server)))
    for c in conns.values():
        c.close()
    return out


# -- libraries ---------------------------------------------------------------------------------

def build_libs(X: np.ndarray, log=print) -> dict:
    import faiss
    import hnswlib

    libs = {}
    faiss.omp_set_num_threads(1)
    with stopwatch() as t:
        fh = faiss.IndexHNSWFlat(X.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        fh.hnsw.efConstruction = EF_CONSTRUCTION
        fh.add(X)
    libs["faiss"] = {"index": fh, "build_s": t()}
    with stopwatch() as t:
        hl = hnswlib.Index(space="cosine", dim=X.shape[1])
        hl.init_index(max_elements=len(X), M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
        hl.add_items(X, np.arange(len(X)), num_threads=1)
    libs["hnswlib"] = {"index": hl, "build_s": t()}
    log(f"  built FAISS HNSWFlat in {libs['faiss']['build_s']:.1f}s, hnswlib in "
        f"{libs['hnswlib']['build_s']:.1f}s (1 thread each)", flush=True)
    return libs


def faiss_degree(fh) -> dict:
    """Layer-0 out-degree of FAISS's graph (its neighbour lists hold -1 in unused slots)."""
    import faiss

    nb = faiss.vector_to_array(fh.hnsw.neighbors)
    off = faiss.vector_to_array(fh.hnsw.offsets)
    lo = off[:-1]
    deg = np.array([(nb[lo[i]:lo[i] + 2 * M] >= 0).sum() for i in range(fh.ntotal)])
    return {"mean": float(deg.mean()), "p5": float(np.percentile(deg, 5)),
            "full_share": float((deg == 2 * M).mean()), "max": int(deg.max())}


def search_libs(libs: dict, coll, efs: list[int], runs: int) -> dict:
    import faiss

    out = {}
    fh, hl = libs["faiss"]["index"], libs["hnswlib"]["index"]
    for ef in efs:
        fh.hnsw.efSearch = ef
        hl.set_ef(max(ef, K + 1))
        ndis_before = faiss.cvar.hnsw_stats.ndis
        for name, fn in (("faiss", lambda q: fh.search(q[None, :], K + 1)[1][0]),
                         ("hnswlib", lambda q: hl.knn_query(q[None, :], K + 1,
                                                            num_threads=1)[0][0])):
            times, got = [], []
            for run in range(runs + 1):
                for qi, q in enumerate(coll.queries):
                    with stopwatch() as t:
                        ids = fn(q)
                    if run:
                        times.append(t())
                    if run == 1:
                        ex = int(coll.exclude[qi])
                        got.append([int(i) for i in ids if i != ex and i >= 0][:K])
            out[(name, ef)] = (got, percentiles(times)["p50_ms"])
        out[("faiss", ef)] += ((faiss.cvar.hnsw_stats.ndis - ndis_before)
                               / ((runs + 1) * len(coll.queries)),)
    return out


# -- one distribution --------------------------------------------------------------------------

def run_distribution(dist: str, n: int, variants: list[str], efs: list[int], runs: int,
                     libs: bool, iterative: str, queries: int, log=print,
                     buffers: bool = False) -> dict:
    coll = hard_data.load(dist, n, queries)
    truth, truth_d = hard_data.exact_top_k(coll.vectors, coll.queries, coll.exclude, K)
    truth = [list(t) for t in truth]
    facts = hard_data.describe(coll, truth_d)
    log(f"{dist}: {facts}", flush=True)
    pg = load_pg(coll, variants, f"recall_{dist.replace('-', '_').replace('@', '_s')}_{len(coll.vectors)}", log)
    res = search_pg(pg["url"], coll, variants, efs, iterative, runs, buffers)
    lib = {}
    if libs:
        built = build_libs(np.ascontiguousarray(coll.vectors, dtype=np.float32), log)
        lib = search_libs(built, coll, efs, runs)
        facts["faiss_layer0_degree"] = faiss_degree(built["faiss"]["index"])
        pg["build_s"].update({k: v["build_s"] for k, v in built.items()})
    rows, per_query = [], {}
    for ef in efs:
        for key in [(v, ef) for v in variants] + [(e, ef) for e in ("hnswlib", "faiss")
                                                    if libs]:
            got, p50 = res[key][:2] if key in res else lib[key][:2]
            r = recalls_of(got, truth)
            engine = "pgvector " + key[0] if key in res else key[0]
            row = {"engine": engine, "ef_search": ef, **tail(r), "p50_ms": p50}
            if key in lib and len(lib[key]) > 2:
                row["distances_per_query"] = lib[key][2]
            if key in res and len(res[key]) > 2:
                row["pages_p50"], row["server_p50_ms"] = res[key][2], res[key][3]
            rows.append(row)
            if key == (variants[0], ef):
                per_query[ef] = r
    print_table(f"{dist}: {len(coll.vectors):,} x 1024-d, {len(coll.queries)} queries, "
                f"recall@10 (iterative_scan {iterative})", rows,
                ["engine", "ef_search", "mean", "p5", "share_lt_0.5", "zero", "p50_ms",
                 "server_p50_ms", "pages_p50"])
    # the lost queries of pgallery's index: where their results and their answers live
    lost = []
    if coll.labels is not None:
        worst_ef = efs[len(efs) // 2]
        for qi, r in enumerate(per_query[worst_ef]):
            if r < 0.5:
                got = res[(variants[0], worst_ef)][0][qi]
                lost.append({"query": qi, "recall": r, "query_label": int(coll.query_labels[qi]),
                             "label_size": int((coll.labels == coll.query_labels[qi]).sum()),
                             "result_labels": [int(coll.labels[g]) for g in got],
                             "truth_labels": [int(coll.labels[t]) for t in truth[qi]],
                             "truth_d1": float(truth_d[qi, 0]), "truth_d10": float(truth_d[qi, -1]),
                             "recall_by_ef": {ef: per_query[ef][qi] for ef in efs}})
    return {"rows_in_collection": len(coll.vectors), "data": facts, "variants": variants,
            "build_s": pg["build_s"], "rows": rows, "per_query_recall": per_query,
            "lost_queries": lost}


DEFAULTS = {"size": 20_000, "dist": "clustered,clustered-sorted,datagen,real", "queries": 200,
            "variants": "half-16-64", "ef": "10,20,40,60,100,200,400", "runs": 1,
            "libs": True, "iterative": "relaxed_order", "buffers": False}
QUICK = {"ef": "10,40,100,400"}
LIBRARIES = ("hnswlib", "faiss-cpu")


def result_name(params) -> str:
    """recall_<size>, with the distributions when not all of them (no size for `real` alone,
    a fixed collection) and the iterative scan when not pgallery's."""
    parts = ["recall"]
    if params.dist != DEFAULTS["dist"]:
        parts.append(params.dist.replace(",", "+"))
    if params.dist != "real":
        parts.append(str(params.size))
    if params.iterative != "relaxed_order":
        parts.append(params.iterative)
    return "_".join(parts)


def run(ctx) -> dict:
    """One pass per distribution (``dist``, comma-separated); ``buffers`` also runs EXPLAIN
    (ANALYZE, BUFFERS) on every query (pages touched, time inside PostgreSQL)."""
    a = ctx.params
    return {"distributions": {
        dist: run_distribution(dist, a.size, a.variants.split(","),
                               [int(x) for x in a.ef.split(",")], a.runs, a.libs,
                               a.iterative, a.queries, buffers=a.buffers)
        for dist in a.dist.split(",")}}

