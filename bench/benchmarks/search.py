"""Unfiltered search: recall@10 (mean and tail), latency and queries/s over ef_search.

For the raw pgvector query and each search_* function, over hnsw.ef_search (or
ivfflat.probes), on bench_<size> (datagen's mixture, bench/lib/benchdb.py):

    python bench/run.py search --size 100000

Raw and function calls alternate query by query in the same pass, so the overhead of the
SQL function over the raw ``ORDER BY <index expression> <=> q LIMIT 10`` is measured
under the same load.
Latency is client-observed (psycopg, prepared statements, binary vectors, one round trip);
for the raw query and search_by_vector it is also measured inside PostgreSQL (server_p50_ms:
EXPLAIN (ANALYZE, TIMING OFF)'s execution time, which leaves out the round trip and the
parse/plan of the outer statement).
Recall per query is summarised with its tail (mean, p5, share under 0.5); latency as
p5 / p50 / p95. Also draws search_<n>.png (the recall-latency and recall-QPS curves).

    python bench/run.py search --size 100000 --set index=ivfflat

sweeps ivfflat.probes instead, on a copy of bench_<n> (bench_<n>_ivfflat) whose HNSW index
is replaced by the IVFFlat one `pgallery index build` makes (lists = rows / 1000), with
the database's default probes (10).
"""

from __future__ import annotations

import numpy as np

import benchdb
from benchdb import INDEXED, QUERY
import datagen
from common import (MODEL, connect, median, percentiles, print_table, pyplot, recall_at_k,
                    recall_tails, run_clients, stopwatch)

K = 10
# the recall knob of each index: its setting, the functions' argument, the default sweep
KNOBS = {"hnsw": ("hnsw.ef_search", "ef_search", "10,20,40,60,100,150,200,400"),
         "ivfflat": ("ivfflat.probes", "probes", "1,2,3,5,10,20,40")}
KNOB_GUC, KNOB_ARG = KNOBS["hnsw"][:2]    # run() sets them from the index parameter
RAW = f"SELECT painting_id FROM painting_embedding ORDER BY {INDEXED} <=> {QUERY} LIMIT 10"
RAW_EXACT = ("SELECT painting_id FROM painting_embedding "
             "ORDER BY (embedding <=> %s) + 0, painting_id LIMIT 10")


def methods(ids: np.ndarray, qs: np.ndarray, image_rows: np.ndarray, ds) -> dict:
    """name -> (sql with an ef placeholder, per-query params, per-query truth as ids)."""
    truth_q = [list(ids[r]) for r in datagen.exact_top_k(ds.vectors, qs, K)]
    image_q = np.asarray(ds.vectors[image_rows])
    truth_img = [list(ids[r]) for r in datagen.exact_top_k(ds.vectors, image_q, K,
                                                           exclude=image_rows)]
    return {
        "raw": (RAW, [(q,) for q in qs], truth_q),
        "search_by_vector": (
            "SELECT painting_id FROM search_by_vector(%s, k => 10, {arg} => {ef})",
            [(q,) for q in qs], truth_q),
        "search_by_image": (
            "SELECT painting_id FROM search_by_image(%s, k => 10, {arg} => {ef})",
            [(ds.image_file(int(r)),) for r in image_rows], truth_img),
        "search_by_text": (
            "SELECT painting_id FROM search_by_text(%s, k => 10, {arg} => {ef})",
            [(benchdb.prompt(i),) for i in range(len(qs))], truth_q),
        "search_hybrid": (
            "SELECT painting_id FROM search_hybrid(%s, k => 10, {arg} => {ef})",
            [(benchdb.prompt(i),) for i in range(len(qs))], None),
    }


def one_pass(conns: dict, plans: dict, ef: int) -> dict:
    """Every query once through every method, interleaved; seconds and ids per method."""
    names = list(plans)
    times = {m: [] for m in names}
    got = {m: [] for m in names}
    for m in names:
        conns[m].execute(f"SET {KNOB_GUC} = {ef}")
    nq = len(plans[names[0]][1])
    for i in range(nq):
        for m in names:
            sql, params, _ = plans[m]
            with stopwatch() as t:
                rows = conns[m].execute(sql.format(ef=ef, arg=KNOB_ARG), params[i], prepare=True).fetchall()
            times[m].append(t())
            got[m].append([r[0] for r in rows])
    return {"times": times, "got": got}


SERVER_TIMED = ("raw", "search_by_vector")
EXPLAIN = "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) "


def server_pass(conns: dict, plans: dict, ef: int) -> dict:
    """Execution time inside the server (ms) of every query, SERVER_TIMED interleaved."""
    times = {m: [] for m in SERVER_TIMED}
    nq = len(plans[SERVER_TIMED[0]][1])
    for i in range(nq):
        for m in SERVER_TIMED:
            sql, params, _ = plans[m]
            plan = conns[m].execute(EXPLAIN + sql.format(ef=ef, arg=KNOB_ARG), params[i]).fetchone()[0]
            times[m].append(plan[0]["Execution Time"])
    return times


def measure(url: str, plans: dict, efs: list[int], runs: int, qps_seconds: float,
            qps_methods: set[str]) -> list[dict]:
    conns = {m: connect(url, autocommit=True) for m in plans}
    rows = []
    for ef in efs:
        one_pass(conns, plans, ef)  # warm-up: caches and plans
        passes = [one_pass(conns, plans, ef) for _ in range(runs)]
        server = server_pass(conns, plans, ef)
        for m, (sql, params, truth) in plans.items():
            stats = [percentiles(p["times"][m]) for p in passes]
            tails = (recall_tails(recall_at_k(g, t) for g, t in
                                  zip(passes[0]["got"][m], truth)) if truth else {})
            row = {"method": m, KNOB_ARG: ef,
                   "p5_ms": median([s["p5_ms"] for s in stats]),
                   "p50_ms": median([s["p50_ms"] for s in stats]),
                   "p95_ms": median([s["p95_ms"] for s in stats]),
                   "recall@10": tails.get("recall_mean"),
                   "recall_p5": tails.get("recall_p5"),
                   "lost_share": tails.get("lost_share"),
                   "rows": float(np.mean([len(g) for g in passes[0]["got"][m]]))}
            if m in server:
                row["server_p50_ms"] = float(np.median(server[m]))
            rows.append(row)
        raw_p50 = next(r["p50_ms"] for r in rows if r["method"] == "raw" and r[KNOB_ARG] == ef)
        server_raw = float(np.median(server["raw"]))
        for r in rows:
            if r[KNOB_ARG] == ef:
                r["p50_vs_raw"] = r["p50_ms"] / raw_p50
                if "server_p50_ms" in r:
                    r["server_vs_raw"] = r["server_p50_ms"] / server_raw
        for m in qps_methods:
            sql, params, _ = plans[m]
            for clients in (1, 2):
                r = next(r for r in rows if r["method"] == m and r[KNOB_ARG] == ef)
                r[f"qps_{clients}c"] = _qps(url, sql.format(ef=ef, arg=KNOB_ARG), params, ef, clients,
                                            qps_seconds)
        print_table(f"{KNOB_GUC} = {ef}", [r for r in rows if r[KNOB_ARG] == ef],
                    ["method", KNOB_ARG, "recall@10", "recall_p5", "lost_share", "p50_ms",
                     "p95_ms", "p50_vs_raw",
                     "server_p50_ms", "server_vs_raw", "qps_1c", "qps_2c", "rows"])
    for c in conns.values():
        c.close()
    return rows


def _qps(url, sql, params, ef, clients, seconds) -> float:
    def make(i):
        conn = connect(url, autocommit=True)
        conn.execute(f"SET {KNOB_GUC} = {ef}")
        offset = i * 7919

        def work(j):
            conn.execute(sql, params[(offset + j) % len(params)], prepare=True).fetchall()
        return work
    return run_clients(make, clients, seconds)["qps"]


def defaults_and_exact(url: str, plans: dict, runs: int) -> list[dict]:
    """What a user gets without tuning (the database defaults), and exact search."""
    out = []
    sql_default = "SELECT painting_id FROM search_by_vector(%s, k => 10)"
    sql_exact = "SELECT painting_id FROM search_by_vector(%s, k => 10, exact => true)"
    _, params, truth = plans["search_by_vector"]
    with connect(url, autocommit=True) as conn:
        ef_default = conn.execute(f"SHOW {KNOB_GUC}").fetchone()[0]
        for label, sql, count in (("search_by_vector (defaults)", sql_default, len(params)),
                                  ("search_by_vector exact", sql_exact, 10),
                                  ("raw exact (seq scan)", RAW_EXACT, 10)):
            conn.execute(sql, params[0], prepare=True).fetchall()
            samples, got = [], []
            for _ in range(runs if count > 10 else 1):
                times = []
                got = []
                for i in range(count):
                    with stopwatch() as t:
                        rows = conn.execute(sql, params[i], prepare=True).fetchall()
                    times.append(t())
                    got.append([r[0] for r in rows])
                samples.append(percentiles(times))
            out.append({"method": label, KNOB_ARG: ef_default if "defaults" in label else None,
                        "p50_ms": median([s["p50_ms"] for s in samples]),
                        "p95_ms": median([s["p95_ms"] for s in samples]),
                        "recall@10": float(np.mean([recall_at_k(g, t)
                                                    for g, t in zip(got, truth)]))})
            if "defaults" in label:   # inside PostgreSQL, as in the sweep
                out[-1]["server_p50_ms"] = float(np.median([
                    conn.execute(EXPLAIN + sql, params[i]).fetchone()[0][0]["Execution Time"]
                    for i in range(count)]))
    print_table("defaults and exact", out)
    return out


def plot(rows: list[dict], path, n: int) -> None:
    plt = pyplot()
    if plt is None:
        return

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    for m in dict.fromkeys(r["method"] for r in rows):
        pts = [r for r in rows if r["method"] == m and r.get("recall@10") is not None]
        if not pts:
            continue
        ax1.plot([r["recall@10"] for r in pts], [r["p50_ms"] for r in pts], "o-", ms=3, label=m)
        if pts[0].get("qps_1c"):
            ax2.plot([r["recall@10"] for r in pts], [r["qps_1c"] for r in pts], "o-", ms=3,
                     label=f"{m}, 1 client")
            ax2.plot([r["recall@10"] for r in pts], [r["qps_2c"] for r in pts], "s--", ms=3,
                     label=f"{m}, 2 clients")
    ax1.set_xlabel("recall@10")
    ax1.set_ylabel("p50 latency (ms)")
    ax1.set_title(f"latency vs recall, {n:,} x 1024-d")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("recall@10")
    ax2.set_ylabel("queries/s")
    ax2.set_title(f"throughput vs recall ({KNOB_GUC} sweep)")
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


DEFAULTS = {"size": 100_000, "queries": 200, "index": "hnsw", "ef": "", "runs": 3,
            "qps_seconds": 3.0, "rebuild": False, "plot": True}
QUICK = {"queries": 50, "runs": 2, "qps_seconds": 1.0}
LIBRARIES = ("matplotlib",)


def result_name(params) -> str:
    return f"search_{params.size}" if params.index == "hnsw" else \
        f"search_{params.index}_{params.size}"


def run(ctx) -> dict:
    a = ctx.params
    global KNOB_GUC, KNOB_ARG
    if a.index not in KNOBS:
        raise SystemExit(f"index must be one of {', '.join(sorted(KNOBS))}")
    KNOB_GUC, KNOB_ARG, default_sweep = KNOBS[a.index]
    db = benchdb.ensure(a.size, a.rebuild)
    if a.index == "ivfflat":
        db = benchdb.ensure_ivfflat_copy(a.size) | {"hnsw": db}
    ds = datagen.dataset(a.size)
    qs = datagen.queries(a.queries)
    with connect(db["url"]) as conn:
        ids = benchdb.painting_ids(conn, a.size)
    image_rows = np.random.default_rng(5).choice(a.size, min(a.queries, a.size),
                                                 replace=False)
    plans = methods(ids, qs, image_rows, ds)
    efs = [int(x) for x in (a.ef or default_sweep).split(",")]
    rows = measure(db["url"], plans, efs, a.runs, a.qps_seconds,
                   {"raw", "search_by_vector"})
    extra = defaults_and_exact(db["url"], plans, a.runs)
    if a.plot:
        plot(rows, ctx.artifact(".png"), a.size)
    return {"distribution": "datagen", "knob": KNOB_GUC, "model": MODEL,
            "database": {k: v for k, v in db.items() if k not in ("url", "hnsw")},
            "sweep": rows, "defaults_and_exact": extra}
