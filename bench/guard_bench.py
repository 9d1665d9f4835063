"""A lost-query guard, prototyped in plain SQL: when the k-th result of the HNSW search is
much farther than the collection's own k-th-neighbour distances, the search lost its way
(all ten results from the wrong region); search again, wider or exactly.

    python bench/guard_bench.py --dist clustered,clustered-sorted,datagen,real

The threshold (tau) comes from the collection, measured the way the tuner measures
recall: 200 stored vectors (not the benchmark's queries), each leaving itself out, and
their exact k-th-neighbour distance; tau = --tau-quantile of those (default the 99th
percentile) times --tau-margin (default 1.5). Nothing is tuned to the benchmark's queries.

Variants, each a plpgsql function created in the bench database (the shape proposed for
nearest_paintings; no migration):
    none           the search as pgallery runs it today (guard off)
    retry-exact    k-th distance > tau: the exact scan answers instead
    retry-ef       k-th distance > tau: the HNSW search again at ef_search --retry-ef
The unguarded and guarded calls alternate query by query in the same pass, so the p50
ratio at equal mean recall is measured under the same load. Also reports, offline, how
many lost queries a pivot check would catch (a sample of stored vectors scanned per
query: any pivot nearer than the k-th result and not among the results proves a miss).

Works on the databases recall_bench.py leaves (table v_half_16_64: pgallery's index in
load order), building them if absent. Writes bench/results/guard_<dist>_<n>.json.
"""

from __future__ import annotations

import argparse

import numpy as np

import hard_data
import recall_bench
from common import (connect, database_exists, percentiles, print_table, server_url,
                    stopwatch, write_result)

K = 10

FUNCTION = """
CREATE OR REPLACE FUNCTION guarded_knn_{table}(q vector, k integer, ef integer,
                                     tau float8, exclude integer, retry_ef integer)
RETURNS TABLE (id integer, distance float8, retried integer)
LANGUAGE plpgsql STABLE
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET enable_sort = off
AS $fn$
DECLARE
    qh halfvec(1024) := l2_normalize(q)::halfvec(1024);
    ids integer[];
    ds float8[];
BEGIN
    PERFORM set_config('hnsw.ef_search', ef::text, true);
    SELECT array_agg(h.id ORDER BY h.d, h.id), array_agg(h.d ORDER BY h.d, h.id)
    INTO ids, ds
    FROM (SELECT t.id, t.embedding <=> q AS d FROM {table} t
          WHERE t.id <> exclude
          ORDER BY l2_normalize(t.embedding)::halfvec(1024) <=> qh LIMIT k) h;
    -- the guard: a full page whose k-th distance is within what this collection's own
    -- k-th neighbours are is returned as it is (no extra work: the distances are there)
    IF tau IS NULL OR (cardinality(ids) = k AND ds[k] <= tau) THEN
        RETURN QUERY SELECT u.i, u.d, 0 FROM unnest(ids, ds) AS u(i, d);
        RETURN;
    END IF;
    IF retry_ef > 0 THEN
        PERFORM set_config('hnsw.ef_search', retry_ef::text, true);
        RETURN QUERY
        SELECT h.id, h.d, 1 FROM (SELECT t.id, t.embedding <=> q AS d FROM {table} t
              WHERE t.id <> exclude
              ORDER BY l2_normalize(t.embedding)::halfvec(1024) <=> qh LIMIT k) h
        ORDER BY h.d, h.id;
        RETURN;
    END IF;
    PERFORM set_config('enable_sort', 'on', true);
    RETURN QUERY
    SELECT t.id, t.embedding <=> q, 2 FROM {table} t
    WHERE t.id <> exclude
    ORDER BY (t.embedding <=> q) + 0, t.id LIMIT k;
END
$fn$;
"""


def calibrate(coll, rng, sample: int, quantile: float, margin: float) -> dict:
    """tau from stored vectors leaving themselves out (what the tuner samples)."""
    rows = rng.choice(len(coll.vectors), min(sample, len(coll.vectors)), replace=False)
    _, d = hard_data.exact_top_k(coll.vectors, coll.vectors[rows], rows, K)
    kth = d[:, -1]
    return {"tau": float(np.quantile(kth, quantile) * margin), "quantile": quantile,
            "margin": margin, "sample": len(rows), "kth_median": float(np.median(kth)),
            "kth_q99": float(np.quantile(kth, 0.99)), "kth_max": float(kth.max())}


def pivot_check(coll, got, truth_ids, rng, share: float) -> dict:
    """Offline: a pivot sample (share of the rows) scanned per query proves a miss when a
    pivot is nearer than the k-th result and not among the results."""
    piv = rng.choice(len(coll.vectors), max(1, int(share * len(coll.vectors))), replace=False)
    flagged, lost_caught, lost = 0, 0, 0
    for qi, g in enumerate(got):
        q = coll.queries[qi]
        dk = 1 - float(np.dot(coll.vectors[g[-1]], q)) if g else np.inf
        dp = 1 - coll.vectors[piv] @ q
        ex = int(coll.exclude[qi])
        hit = any(dp[j] < dk - 1e-6 and int(p) not in g and int(p) != ex
                  for j, p in enumerate(piv))
        r = len(set(g) & set(truth_ids[qi])) / K
        flagged += hit
        if r < 0.5:
            lost += 1
            lost_caught += hit
    return {"pivots": len(piv), "flagged_share": flagged / len(got), "lost": lost,
            "lost_caught": lost_caught}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dist", default="clustered,clustered-sorted,datagen,real")
    p.add_argument("--size", type=int, default=20_000)
    p.add_argument("--ef", default="10,20,40,60,100,200,400")
    p.add_argument("--retry-ef", type=int, default=400)
    p.add_argument("--tau-quantile", type=float, default=0.99)
    p.add_argument("--tau-margin", type=float, default=1.5)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--variant", default="half-16-64")
    a = p.parse_args(argv)
    for dist in a.dist.split(","):
        run(dist, a.size, [int(x) for x in a.ef.split(",")], a, a.variant)


def run(dist, n, efs, a, variant):
    coll = hard_data.load(dist, n)
    truth, truth_d = hard_data.exact_top_k(coll.vectors, coll.queries, coll.exclude, K)
    truth = [list(t) for t in truth]
    dbname = f"recall_{dist.replace('-', '_').replace('@', '_s')}_{len(coll.vectors)}"
    table = recall_bench.table_of(variant)
    url = server_url(dbname)
    exists = database_exists(dbname)
    if exists:
        with connect(url) as conn:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
    if not exists:
        recall_bench.load_pg(coll, [variant], dbname)
    rng = np.random.default_rng(11)
    cal = calibrate(coll, rng, 200, a.tau_quantile, a.tau_margin)
    print(f"{dist}: tau {cal['tau']:.4f} (k-th neighbour distance of 200 stored vectors: "
          f"median {cal['kth_median']:.4f}, q99 {cal['kth_q99']:.4f}, max {cal['kth_max']:.4f})",
          flush=True)
    modes = {"none": (None, 0), "retry-exact": (cal["tau"], 0),
             "retry-ef": (cal["tau"], a.retry_ef)}
    conns = {m: connect(url, autocommit=True) for m in modes}
    conns["none"].execute(FUNCTION.format(table=table))
    stmt = f"SELECT id, distance, retried FROM guarded_knn_{table}(%s, %s, %s, %s, %s, %s)"
    rows, pivots = [], []
    for ef in efs:
        times = {m: [] for m in modes}
        got = {m: [] for m in modes}
        retried = {m: 0 for m in modes}
        for run_no in range(a.runs + 1):
            for qi, q in enumerate(coll.queries):
                names = list(modes)
                names = names[qi % len(names):] + names[:qi % len(names)]  # no mode always first
                for m in names:
                    tau, retry_ef = modes[m]
                    with stopwatch() as t:
                        res = conns[m].execute(stmt, (q, K, ef, tau, int(coll.exclude[qi]),
                                                      retry_ef), prepare=True).fetchall()
                    if run_no:
                        times[m].append(t())
                    if run_no == 1:
                        got[m].append([r[0] for r in res])
                        retried[m] += bool(res and res[0][2])
        for m in modes:
            r = recall_bench.recalls_of(got[m], truth)
            pct = percentiles(times[m])
            # paired: each query's guarded time over its unguarded time in the same pass
            # (medians of ratios cancel most of the shared machine's noise)
            paired = np.array(times[m]) / np.array(times["none"])
            pct["paired_ratio_p50"] = float(np.median(paired))
            pct["paired_ratio_mean"] = float(np.mean(paired))
            rows.append({"guard": m, "ef_search": ef, **recall_bench.tail(r),
                         "p50_ms": pct["p50_ms"], "p95_ms": pct["p95_ms"],
                         "paired_ratio_p50": pct["paired_ratio_p50"],
                         "paired_ratio_mean": pct["paired_ratio_mean"],
                         "retried": retried[m] / len(coll.queries)})
        pivots.append({"ef_search": ef, **pivot_check(coll, got["none"], truth, rng, 0.01)})
    for c in conns.values():
        c.close()
    # p50 at equal mean recall: the unguarded curve interpolated at each guarded point
    base = sorted((r["mean"], r["p50_ms"]) for r in rows if r["guard"] == "none")
    for r in rows:
        if r["guard"] != "none":
            xs, ys = [b[0] for b in base], [b[1] for b in base]
            if xs[0] <= r["mean"] <= xs[-1]:
                r["unguarded_p50_at_same_mean"] = float(np.interp(r["mean"], xs, ys))
                r["p50_ratio_at_same_mean"] = r["p50_ms"] / r["unguarded_p50_at_same_mean"]
            same = next(b for b in rows if b["guard"] == "none" and b["ef_search"] == r["ef_search"])
            r["p50_ratio_same_ef"] = r["p50_ms"] / same["p50_ms"]
    print_table(f"{dist}: lost-query guard on {variant} ({len(coll.vectors):,} rows, "
                f"{len(coll.queries)} queries, tau {cal['tau']:.4f})", rows,
                ["guard", "ef_search", "mean", "p5", "share_lt_0.5", "zero", "p50_ms",
                 "p95_ms", "retried", "paired_ratio_p50", "paired_ratio_mean",
                 "p50_ratio_at_same_mean"])
    print_table(f"{dist}: offline pivot check (1% of rows scanned per query)", pivots)
    write_result(f"guard_{dist}_{len(coll.vectors)}",
                 {"dist": dist, "size": len(coll.vectors), "variant": variant,
                  "calibration": cal, "retry_ef": a.retry_ef, "rows": rows,
                  "pivot_check": pivots})


if __name__ == "__main__":
    main()
