"""Filtered search per filter kind and selectivity: full pages, recall tails, latency, plan.

Selectivities 50%, 5%, 0.5%, 0.1% for every filter kind: rows returned, recall@10 against
the exact filtered answer, p5/p50/p95, and the plan used.

    python bench/run.py filters --size 100000

Side by side in the same pass, per query: search_by_vector with the filter (pgallery picks
the strategy), and two fixed plans a user might write by hand: the raw HNSW query with the
filter in WHERE and iterative scans off (pgvector's default), and with relaxed_order
iterative scans on. Recall per query with its tail (mean, p5, share under 0.5); latency
p5 / p50 / p95. Also draws filters_<n>.png.
"""

from __future__ import annotations

import numpy as np

import benchdb
from benchdb import INDEXED, QUERY
import datagen
from common import (connect, median, percentiles, print_table, pyplot, recall_at_k, recall_tails,
                    stopwatch)

WHERE = {
    "author": "p.author ILIKE '%%' || %s || '%%'",
    "technique": "p.technique ILIKE '%%' || %s || '%%'",
    "school": "p.school ILIKE '%%' || %s || '%%'",
    "painting_type": "lower(p.painting_type) = lower(%s)",
    "timeframe": "lower(p.timeframe) = lower(%s)",
    "years": "p.years && int4range(%s, %s, '[]')",
}


def raw_sql(kind: str) -> str:
    return ("SELECT e.painting_id FROM painting_embedding e JOIN painting p USING (painting_id)"
            f" WHERE {WHERE[kind]} ORDER BY {INDEXED} <=> {QUERY} LIMIT 10")


def function_sql(args: dict) -> str:
    named = ", ".join(f"{k} => %s" for k in args)
    return f"SELECT painting_id FROM search_by_vector(%s, k => 10, {named})"


def plan_of(conn, sql: str, params) -> str:
    """Which access path served the call: captured with auto_explain."""
    notes = []
    handler = lambda d: notes.append(d.message_primary or "")  # noqa: E731
    conn.add_notice_handler(handler)
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = notice")
    conn.execute(sql, params).fetchall()
    conn.execute("SET auto_explain.log_min_duration = -1")
    conn.remove_notice_handler(handler)
    text = "\n".join(notes)
    if "painting_embedding_hnsw" in text and "Sort" not in text.split("hnsw")[0][-400:]:
        return "hnsw iterative" if "search_by_vector" in sql else "hnsw"
    if "painting_embedding_hnsw" in text:
        return "hnsw+exact"
    return "exact"


DEFAULTS = {"size": 100_000, "queries": 50, "runs": 3, "kinds": ",".join(datagen.KINDS),
            "baselines": True, "plot": True}
QUICK = {"queries": 20, "runs": 1}
LIBRARIES = ("matplotlib",)


def run(ctx) -> dict:
    a = ctx.params
    db = benchdb.ensure(a.size)
    ds = datagen.dataset(a.size)
    qs = datagen.queries(a.queries)
    conn = connect(db["url"], autocommit=True)
    ids = benchdb.painting_ids(conn, a.size)
    prefilter = conn.execute("SELECT current_setting('pgallery.prefilter_limit', true)"
                             ).fetchone()[0]
    rows = []
    kinds = a.kinds.split(",")
    for f in [f for f in ds.filters() if f["kind"] in kinds]:
        truth = [list(ids[r[r >= 0]]) for r in
                 datagen.exact_top_k(ds.vectors, qs, 10, mask=f["mask"])]
        values = list(f["args"].values())
        variants = {"search_by_vector": (function_sql(f["args"]), lambda q: (q, *values))}
        if a.baselines:
            variants["raw, iterative off"] = (raw_sql(f["kind"]), lambda q: (*values, q))
            variants["raw, relaxed_order"] = (raw_sql(f["kind"]), lambda q: (*values, q))
        conns = {}
        for name in variants:
            c = connect(db["url"], autocommit=True)
            c.execute("SET hnsw.iterative_scan = "
                      + ("relaxed_order" if "relaxed" in name else "off"))
            conns[name] = c
        times = {name: [[] for _ in range(a.runs + 1)] for name in variants}
        got = {name: [] for name in variants}
        for run in range(a.runs + 1):  # run 0 warms up
            for q in qs:
                for name, (sql, params) in variants.items():
                    with stopwatch() as t:
                        res = conns[name].execute(sql, params(q), prepare=True).fetchall()
                    times[name][run].append(t())
                    if run == 1:
                        got[name].append([r[0] for r in res])
        for name, (sql, params) in variants.items():
            stats = [percentiles(ts) for ts in times[name][1:]]
            full = [min(10, f["matching"]) for _ in qs]
            row = {"kind": f["kind"], "selectivity": f["selectivity"],
                   "matching": f["matching"], "variant": name,
                   "rows": float(np.mean([len(g) for g in got[name]])),
                   "full_pages": float(np.mean([len(g) == w for g, w in zip(got[name], full)])),
                   **_recall(got[name], truth),
                   "p5_ms": median([s["p5_ms"] for s in stats]),
                   "p50_ms": median([s["p50_ms"] for s in stats]),
                   "p95_ms": median([s["p95_ms"] for s in stats])}
            if name == "search_by_vector":
                row["plan"] = plan_of(conns[name], sql, params(qs[0]))
            rows.append(row)
            conns[name].close()
        print_table(f"{f['kind']} {f['args']} ({f['selectivity']:.1%}, {f['matching']:,} rows)",
                    [r for r in rows if r["kind"] == f["kind"]
                     and r["selectivity"] == f["selectivity"]],
                    ["variant", "rows", "full_pages", "recall@10", "p50_ms", "p95_ms", "plan"])
    conn.close()
    ours = [r for r in rows if r["variant"] == "search_by_vector"]
    print_table("search_by_vector, every filter", ours,
                ["kind", "selectivity", "matching", "rows", "recall@10", "p50_ms", "p95_ms",
                 "plan"])
    targets = {
        "full_pages_always": all(r["full_pages"] == 1.0 for r in ours),
        "min_recall": min(r["recall@10"] for r in ours),
        "max_p95_ms": max(r["p95_ms"] for r in ours),
    }
    print(f"\ntargets: full pages {targets['full_pages_always']}, "
          f"min recall@10 {targets['min_recall']:.3f} (>= 0.95), "
          f"max p95 {targets['max_p95_ms']:.1f} ms (<= 20 ms)")
    if a.plot:
        plot(rows, ctx.artifact(".png"), a.size)
    return {"distribution": "datagen", "prefilter_limit_setting": prefilter, "rows": rows,
            "targets": targets}


def _recall(got, truth) -> dict:
    tails = recall_tails(recall_at_k(g, t) for g, t in zip(got, truth))
    return {"recall@10": tails["recall_mean"], "recall_p5": tails["recall_p5"],
            "lost_share": tails["lost_share"]}


def plot(rows, path, n):
    plt = pyplot()
    if plt is None:
        return

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    for variant, style in (("search_by_vector", "o-"), ("raw, relaxed_order", "s--"),
                           ("raw, iterative off", "x:")):
        pts = [r for r in rows if r["variant"] == variant]
        if not pts:
            continue
        sels = sorted({r["selectivity"] for r in pts}, reverse=True)
        worst_p95 = [max(r["p95_ms"] for r in pts if r["selectivity"] == s) for s in sels]
        worst_rec = [min(r["recall@10"] * r["full_pages"] for r in pts
                         if r["selectivity"] == s) for s in sels]
        axes[0].plot(sels, worst_p95, style, ms=4, label=variant)
        axes[1].plot(sels, worst_rec, style, ms=4, label=variant)
    for ax in axes:
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("filter selectivity (fraction of rows matching)")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("worst p95 over filter kinds (ms)")
    axes[1].set_ylabel("worst recall@10 x full-page rate")
    axes[0].set_title(f"filtered search, {n:,} rows")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

