"""One server against Citus with 2 and 3 workers: load, latency, recall, per-shard work, N machines.

    PGALLERY_CITUS_PG_BIN=<bin> nice -n 10 python bench/run.py citus --size 100000
    PGALLERY_CITUS_PG_BIN=<bin> python bench/run.py citus --size 3000 --quick

PGALLERY_CITUS_PG_BIN names a PostgreSQL bin directory with Citus and pgvector installed
(docs/scale-out.md says how to build one); without it the benchmark is skipped, saying so.

One run, every configuration from the same binaries and the same node settings
(database/cluster.py's NODE_SETTINGS: 256 MB shared buffers, 512 MB maintenance_work_mem;
the single server without Citus loaded), all under bench/.work/citus and destroyed at the
end:

  single      one server (``workers`` 0)
  2 workers   a coordinator and 2 workers, 8 shards (`pgallery db cluster create`)
  3 workers   a coordinator and 3 workers, 12 shards

(``workers``: the worker counts to run, 0 = one server; ``dist``: the collection,
bench/lib/hard_data.py's clustered, datagen, ...)

Each is migrated (`pgallery migrate` lays a cluster out) and loaded with the same Parquet
file through the library's loader (`pgallery load --embeddings`: COPY + merge per batch,
the HNSW index built once after the load, then the after-load steps: ANALYZE, the
recall tuner within its budget). Timed: rows merged, the HNSW build (the coordinator's
CREATE INDEX from pg_stat_statements; on a cluster it builds every shard's index), and the
rest. Then, with every configuration up, each query runs on each in turn (interleaved,
so the machine's load falls on all alike), in three modes of `search_by_vector` (their
order rotating from query to query):

  default     the database's default after the load (the tuner's choice, recorded)
  ef          ef_search => ``ef``, the same on every configuration
  exact       exact => true (the compact copy scanned on every shard, re-ranked)

client-observed p5 / p50 / p95 and recall@10 against numpy's exact top 10 (mean, p5,
share under 0.5). For the first ``explain`` queries, EXPLAIN (ANALYZE, BUFFERS) of what a
search sends each shard, under the settings nearest_paintings sends the workers
(shard_search_settings, with citus.explain_all_tasks on): the ANN statement at ``ef``
(ORDER BY the indexed expression LIMIT 10, the distances on the full vectors) and the
exact path's candidate scan of the compact copy: per shard its rows, the pages its plan
read (shared hit + read: the index's pages and the heap pages of its rows) and its
execution time, and the coordinator's execution time beside the slowest shard's.

The projection (figures["projection"]): the per-shard ANN pages and time fitted as
a + b ln(rows per shard) over the measured points (one server = one shard of every row),
then for 10M and 100M rows on N machines (4 shards each, Citus's layout here): rows per
shard, memory per node (vectors, compact copy and HNSW index at the bytes per row measured
here), pages and time per shard, and latency = time per shard (a machine runs its 4
shards at once on >= 4 cores) + what a call cost here beyond its slowest shard (client p50
at ``ef`` minus the slowest shard's EXPLAIN time: the function, and on a cluster the
coordinator's planning, dispatch and merge). docs/scale-out.md ("What was measured")
states the model's assumptions beside the figures.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

import hard_data
from common import WORK, Skipped, connect, percentiles, print_table, recall_tails

DEFAULTS = {"size": 100_000, "dist": "clustered", "workers": "0,2,3", "queries": 200,
            "ef": 40, "explain": 20}
QUICK = {"queries": 40, "explain": 5}

PG_BIN_VARIABLE = "PGALLERY_CITUS_PG_BIN"
MODEL = "bench/citus"
K = 10
MODES = ("default", "ef", "exact")
# what a search sends every shard (nearest_paintings' unfiltered ANN subquery) and the
# exact path's candidate scan (compact_candidates)
ANN = ("SELECT e.painting_id, e.embedding <=> %(q)s::vector AS distance"
       " FROM painting_embedding e WHERE e.model = %(model)s"
       " ORDER BY l2_normalize(e.embedding)::halfvec(1024)"
       "          <=> l2_normalize(%(q)s::vector)::halfvec(1024) LIMIT 10")
EXACT_CANDIDATES = ("SELECT hv.painting_id FROM painting_embedding_half hv"
                    " WHERE hv.model = %(model)s"
                    " ORDER BY (hv.embedding <=> l2_normalize(%(q)s::vector)::halfvec(1024))"
                    " + 0 LIMIT 10")
# the projection's collections and machine counts; shards per machine as laid out here
PROJECT_ROWS = (10_000_000, 100_000_000)
PROJECT_MACHINES = (1, 2, 4, 8, 16, 32, 64)
SHARDS_PER_MACHINE = 4
NODE_RAM_GB = 64              # a machine of the projection; half of it for the indexes


def result_name(params) -> str:
    return f"citus_{params.dist}_{params.size}"


def pg_bin() -> Path:
    value = os.environ.get(PG_BIN_VARIABLE)
    if not value:
        raise Skipped(f"{PG_BIN_VARIABLE} is not set: no PostgreSQL with Citus to start a "
                      "cluster from (docs/scale-out.md says how to build one)")
    from pgallery.database.cluster import check_citus_installation

    check_citus_installation(Path(value))
    return Path(value)


# -- the configurations ------------------------------------------------------------------

class Config:
    """One server or one local cluster under ``home``, started and migrated."""

    def __init__(self, workers: int, home: Path, bins: Path):
        from pgallery.database.cluster import NODE_SETTINGS, LocalCluster
        from pgallery.database.embedded import EmbeddedServer

        self.workers = workers
        self.name = "single" if workers == 0 else f"{workers} workers"
        self.home = home
        self.cluster = self.server = None
        if workers == 0:
            # a cluster node's memory, without Citus (pg_stat_statements as every node has)
            settings = {k: v for k, v in NODE_SETTINGS.items()
                        if k != "shared_preload_libraries"}
            self.server = EmbeddedServer(home / "single", pg_bin=bins, settings=settings)
            self.url = self.server.ensure_running()
        else:
            self.cluster = LocalCluster(home)
            self.url = self.cluster.create(workers, bins)

    def migrate(self) -> None:
        from pgallery import migrations

        migrations.upgrade(self.url)
        with connect(self.url, autocommit=True) as conn:
            # for the coordinator's statement times (the HNSW build); its own schema, so
            # that nothing of it is pgallery's
            conn.execute("CREATE SCHEMA IF NOT EXISTS bench_stats")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
                         " SCHEMA bench_stats")

    def destroy(self) -> None:
        if self.cluster is not None:
            self.cluster.destroy()
        elif self.server is not None:
            try:
                self.server.stop("immediate")
            finally:
                shutil.rmtree(self.home / "single", ignore_errors=True)


# -- loading -----------------------------------------------------------------------------

def parquet_file(coll: hard_data.Collection, size: int) -> Path:
    """The collection as `pgallery load --embeddings` reads it (cached beside the data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = WORK / "data" / f"citus-{coll.name}-{size}.parquet"
    if not path.is_file():
        X = np.ascontiguousarray(coll.vectors, dtype=np.float32)
        table = pa.table({
            "image_file": [image_file(i) for i in range(len(X))],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])})
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
    return path


def image_file(i: int) -> str:
    return f"c-{i:07d}.jpg"


class Clock:
    """A loader Progress that notes when the last row was merged."""

    def __init__(self):
        self.total = self.done = 0
        self.merged_at = None

    def start(self, total, description=None):
        self.total = total or 0

    def advance(self, n=1):
        self.done += n
        if self.done >= self.total:
            self.merged_at = time.perf_counter()


def load(config: Config, path: Path, log) -> dict:
    from pgallery.loading.embeddings_file import load_embeddings_file

    clock = Clock()
    started = time.perf_counter()
    with connect(config.url) as conn:
        summary = load_embeddings_file(conn, path, model=MODEL, progress=clock)
        conn.commit()
    total = time.perf_counter() - started
    with connect(config.url, autocommit=True) as conn:
        build_ms = conn.execute(
            "SELECT coalesce(sum(total_exec_time), 0) FROM bench_stats.pg_stat_statements"
            " WHERE query ILIKE 'CREATE INDEX%%hnsw%%'").fetchone()[0]
        default_ef = conn.execute("SELECT current_setting('hnsw.ef_search')").fetchone()[0]
    merged = (clock.merged_at or started) - started
    tuning = summary.tuning
    facts = {"rows": summary.loaded, "load_s": total, "merge_s": merged,
             "hnsw_build_s": build_ms / 1000.0,
             "after_load_s": total - merged - build_ms / 1000.0,
             "tuner_s": getattr(tuning, "seconds", None),
             "default_ef_search": int(default_ef), "notes": summary.notes}
    log(f"  {config.name}: {summary.loaded:,} rows in {total:.1f}s (merge {merged:.1f}s, "
        f"HNSW {build_ms / 1000:.1f}s), default ef_search {default_ef}", flush=True)
    return facts


def layout(config: Config) -> dict:
    """Shards, rows per shard and bytes per row of what a search reads."""
    with connect(config.url, autocommit=True) as conn:
        if config.cluster is None:
            rows = [conn.execute("SELECT count(*) FROM painting_embedding").fetchone()[0]]
            sizes = [int(v) for v in conn.execute(
                "SELECT pg_total_relation_size('painting_embedding'),"
                "       pg_relation_size('painting_embedding_hnsw'),"
                "       pg_total_relation_size('painting_embedding_half')").fetchone()]
            per_node = [sizes[0] + sizes[2]]
        else:
            rows = [int(r[0]) for r in conn.execute(
                "SELECT result FROM run_command_on_shards('painting_embedding',"
                " 'SELECT count(*) FROM %s') ORDER BY shardid")]
            per_node = [int(r[0]) for r in conn.execute(
                "SELECT sum(shard_size) FROM citus_shards WHERE citus_table_type ="
                " 'distributed' GROUP BY nodeport ORDER BY nodeport")]
            table, half = (int(conn.execute(
                "SELECT coalesce(sum(shard_size), 0) FROM citus_shards"
                " WHERE table_name = %s::regclass", (t,)).fetchone()[0])
                for t in ("painting_embedding", "painting_embedding_half"))
            index = sum(hnsw_bytes(worker) for worker in config.cluster.workers)
            sizes = (table, index, half)
    n = sum(rows)
    return {"shards": len(rows), "rows_per_shard_min": min(rows),
            "rows_per_shard_max": max(rows), "rows": n,
            "bytes_per_row": {"vectors_and_index": sizes[0] / n, "hnsw_index": sizes[1] / n,
                              "compact_copy": sizes[2] / n},
            "distributed_bytes_per_node": per_node}


def hnsw_bytes(worker) -> int:
    """The HNSW indexes of the shards on one worker (shards are listed only to sessions
    that ask for them)."""
    with psycopg.connect(worker.url(), autocommit=True) as conn:
        conn.execute("SET citus.show_shards_for_app_name_prefixes = '*'")
        return int(conn.execute(
            "SELECT coalesce(sum(pg_relation_size(oid)), 0) FROM pg_class"
            " WHERE relkind = 'i' AND relname LIKE 'painting\\_embedding\\_hnsw\\_%'"
            ).fetchone()[0])


# -- searching ---------------------------------------------------------------------------

def statement(mode: str) -> str:
    extra = {"default": "", "ef": ", ef_search => %(ef)s", "exact": ", exact => true"}[mode]
    return f"SELECT image_file FROM search_by_vector(%(q)s, k => 10{extra})"


def search_all(configs, conns, queries, truth, ef: int, log) -> list[dict]:
    """Every query on every configuration in turn, in every mode: latency and recall."""
    times = {(c.name, m): [] for c in configs for m in MODES}
    recalls = {(c.name, m): [] for c in configs for m in MODES}
    for i, q in enumerate(queries):
        for c in configs:
            # the order of the modes rotates: an exact scan evicts the index's pages from
            # a node's shared buffers, and a query's second search finds its pages warm
            for mode in MODES[i % 3:] + MODES[:i % 3]:
                started = time.perf_counter()
                got = [r[0] for r in conns[c.name].execute(
                    statement(mode), {"q": q, "ef": ef}).fetchall()]
                times[c.name, mode].append(time.perf_counter() - started)
                ids = {int(f[2:9]) for f in got}
                recalls[c.name, mode].append(len(ids & truth[i]) / K)
        if (i + 1) % 20 == 0:
            log(f"  searched {i + 1}/{len(queries)}", end="\r", flush=True)
    return [{"config": c.name, "mode": m, **percentiles(times[c.name, m]),
             **recall_tails(recalls[c.name, m]), "queries": len(queries)}
            for c in configs for m in MODES]


def explain(conn, sql: str, q, ef: int, sharded: bool) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of one per-shard statement under the search's settings:
    each shard's rows, pages and time, and the coordinator's time."""
    with conn.transaction(force_rollback=True):
        if sharded:
            conn.execute("SET LOCAL citus.explain_all_tasks = on")
        conn.execute("SELECT shard_search_settings(%s, 1)", (ef,))
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}",
                            {"q": q, "model": MODEL}).fetchone()[0]
    top = (plan if isinstance(plan, list) else json.loads(plan))[0]
    tasks = shard_plans(top) if sharded else [top]
    shards = [{"rows": int(t["Plan"].get("Actual Rows", 0)),
               "pages": int(t["Plan"].get("Shared Hit Blocks", 0)
                            + t["Plan"].get("Shared Read Blocks", 0)),
               "read_pages": int(t["Plan"].get("Shared Read Blocks", 0)),
               "index_scan": uses_index(t["Plan"]),
               "ms": float(t.get("Execution Time", 0.0))} for t in tasks]
    return {"coordinator_ms": float(top.get("Execution Time", 0.0)), "shards": shards}


def shard_plans(top: dict) -> list[dict]:
    """The remote plans of every task under a Citus plan (citus.explain_all_tasks)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "Remote Plan" in node:
                remote = node["Remote Plan"]
                while isinstance(remote, list):
                    remote = remote[0]
                found.append(remote)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(top)
    return found


def uses_index(plan: dict) -> bool:
    if plan.get("Node Type") == "Index Scan" and "hnsw" in plan.get("Index Name", ""):
        return True
    return any(uses_index(p) for p in plan.get("Plans", []))


def explain_all(configs, conns, queries, ef: int) -> list[dict]:
    out = []
    for name, sql in (("ann", ANN), ("exact_candidates", EXACT_CANDIDATES)):
        for c in configs:
            runs = [explain(conns[c.name], sql, q, ef, c.cluster is not None)
                    for q in queries]
            shard_ms = [s["ms"] for r in runs for s in r["shards"]]
            slowest = [max(s["ms"] for s in r["shards"]) for r in runs]
            pages = [s["pages"] for r in runs for s in r["shards"]]
            overhead = [r["coordinator_ms"] - max(s["ms"] for s in r["shards"]) for r in runs]
            out.append({
                "statement": name, "config": c.name, "shards": len(runs[0]["shards"]),
                "rows_returned_per_shard": float(np.median(
                    [s["rows"] for r in runs for s in r["shards"]])),
                "pages_per_shard_p50": float(np.median(pages)),
                "pages_per_shard_p95": float(np.percentile(pages, 95)),
                "pages_per_query_p50": float(np.median(
                    [sum(s["pages"] for s in r["shards"]) for r in runs])),
                "read_pages_per_query_p50": float(np.median(
                    [sum(s["read_pages"] for s in r["shards"]) for r in runs])),
                "shard_ms_p50": float(np.median(shard_ms)),
                "shard_ms_p95": float(np.percentile(shard_ms, 95)),
                "slowest_shard_ms_p50": float(np.median(slowest)),
                "coordinator_ms_p50": float(np.median([r["coordinator_ms"] for r in runs])),
                "coordinator_ms_p95": float(np.percentile(
                    [r["coordinator_ms"] for r in runs], 95)),
                "overhead_ms_p50": float(np.median(overhead)),
                "index_scan_share": float(np.mean(
                    [s["index_scan"] for r in runs for s in r["shards"]])),
                "queries": len(runs)})
    return out


# -- the projection ----------------------------------------------------------------------

def fit_log(points: list[tuple[float, float]]) -> tuple[float, float]:
    """y = a + b ln(x), least squares."""
    x = np.log([p[0] for p in points])
    y = np.array([p[1] for p in points])
    if len(points) == 1:
        return float(y[0]), 0.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def overheads(ann: list[dict], searches: list[dict]) -> dict:
    """Per configuration, what a search_by_vector call at ``ef`` costs beyond its slowest
    shard's scan: client p50 minus the slowest shard's p50 (EXPLAIN's own coordinator
    time is no guide: EXPLAIN ANALYZE of every task costs more than the search)."""
    client = {r["config"]: r["p50_ms"] for r in searches if r["mode"] == "ef"}
    return {row["config"]: client[row["config"]] - row["slowest_shard_ms_p50"] for row in ann}


def projection(layouts: dict, ann: list[dict], searches: list[dict]) -> dict:
    """What N machines would give at 10M and 100M rows (module docstring)."""
    points = []
    for row in ann:
        lay = layouts[row["config"]]
        points.append((lay["rows"] / lay["shards"], row))
    pages = fit_log([(r, row["pages_per_shard_p50"]) for r, row in points])
    shard_ms = fit_log([(r, row["shard_ms_p50"]) for r, row in points])
    beyond = overheads(ann, searches)
    single = [beyond[row["config"]] for _, row in points if row["shards"] == 1]
    sharded = [beyond[row["config"]] for _, row in points if row["shards"] > 1]
    function_ms = float(np.median(single)) if single else 0.0
    overhead = float(np.median(sharded)) if sharded else function_ms
    per_row = max((lay["bytes_per_row"] for lay in layouts.values()),
                  key=lambda b: b["vectors_and_index"])
    rows = []
    for total in PROJECT_ROWS:
        for machines in PROJECT_MACHINES:
            # one machine: one server, no Citus (one "shard" of every row)
            shards = 1 if machines == 1 else machines * SHARDS_PER_MACHINE
            r = total / shards
            t = shard_ms[0] + shard_ms[1] * math.log(r)
            rows.append({
                "rows": total, "machines": machines, "shards": shards,
                "rows_per_shard": r,
                "hnsw_gb_per_node": total / machines * per_row["hnsw_index"] / 1e9,
                # the model holds only while each node keeps its indexes in memory
                "index_fits_node_ram": total / machines * per_row["hnsw_index"] / 1e9
                                       <= NODE_RAM_GB / 2,
                "all_gb_per_node": total / machines * (per_row["vectors_and_index"]
                                                       + per_row["compact_copy"]) / 1e9,
                "pages_per_shard": pages[0] + pages[1] * math.log(r),
                "pages_per_query": shards * (pages[0] + pages[1] * math.log(r)),
                "shard_ms": t, "latency_ms": t + (overhead if machines > 1 else function_ms)})
    return {"fit": {"pages_per_shard": {"a": pages[0], "b_per_ln_rows": pages[1]},
                    "shard_ms": {"a": shard_ms[0], "b_per_ln_rows": shard_ms[1]},
                    "points": [{"rows_per_shard": r, "config": row["config"],
                                "pages": row["pages_per_shard_p50"],
                                "shard_ms": row["shard_ms_p50"]} for r, row in points]},
            "beyond_slowest_shard_ms": beyond, "single_server_function_ms": function_ms,
            "cluster_overhead_ms": overhead, "bytes_per_row": per_row,
            "shards_per_machine": SHARDS_PER_MACHINE, "table": rows}


# -- the run -----------------------------------------------------------------------------

def run(ctx) -> dict:
    a = ctx.params
    bins = pg_bin()
    workers = [int(w) for w in a.workers.split(",")]
    coll = hard_data.load(a.dist, a.size, a.queries)
    truth_idx, _ = hard_data.exact_top_k(coll.vectors, coll.queries, coll.exclude, K)
    truth = [set(row.tolist()) for row in truth_idx]
    path = parquet_file(coll, a.size)
    base = WORK / "citus"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)             # the nodes may run as the unprivileged `pgallery` user
    configs, conns, loads, layouts = [], {}, {}, {}
    try:
        for w in workers:
            home = Path(tempfile.mkdtemp(prefix=f"w{w}-", dir=base))
            home.chmod(0o755)
            started = time.perf_counter()
            config = Config(w, home, bins)
            configs.append(config)
            config.migrate()
            setup_s = time.perf_counter() - started
            loads[config.name] = {"setup_and_migrate_s": setup_s,
                                  **load(config, path, ctx.log)}
            layouts[config.name] = layout(config)
        for c in configs:
            conns[c.name] = connect(c.url, autocommit=True)
            for q in coll.queries[:10]:                     # warm: caches and plans
                for mode in MODES:
                    conns[c.name].execute(statement(mode), {"q": q, "ef": a.ef}).fetchall()
        searches = search_all(configs, conns, coll.queries, truth, a.ef, ctx.log)
        per_shard = explain_all(configs, conns, coll.queries[:a.explain], a.ef)
    finally:
        for conn in conns.values():
            conn.close()
        for c in configs:
            c.destroy()
        shutil.rmtree(base, ignore_errors=True)
    for row in searches:
        row["ef_search"] = {"default": loads[row["config"]]["default_ef_search"],
                            "ef": a.ef, "exact": None}[row["mode"]]
    print_table(f"loads ({a.dist}, {a.size:,} rows)",
                [{"config": n, **{k: v for k, v in f.items() if k != "notes"},
                  "shards": layouts[n]["shards"],
                  "rows/shard": f"{layouts[n]['rows_per_shard_min']:,}-"
                                f"{layouts[n]['rows_per_shard_max']:,}"}
                 for n, f in loads.items()])
    print_table("search_by_vector, client-observed", searches,
                ["config", "mode", "ef_search", "p5_ms", "p50_ms", "p95_ms", "recall_mean",
                 "recall_p5", "lost_share"])
    print_table(f"per shard (EXPLAIN ANALYZE, BUFFERS; ef_search {a.ef})", per_shard,
                ["statement", "config", "shards", "rows_returned_per_shard",
                 "pages_per_shard_p50", "pages_per_query_p50", "shard_ms_p50",
                 "slowest_shard_ms_p50", "coordinator_ms_p50", "overhead_ms_p50",
                 "index_scan_share"])
    projected = projection(layouts, [r for r in per_shard if r["statement"] == "ann"],
                           [r for r in searches])
    print_table("projection (per-shard cost fitted on ln rows per shard)",
                projected["table"])
    return {"distribution": coll.name, "loads": loads, "layouts": layouts,
            "searches": searches, "per_shard": per_shard, "projection": projected}
