"""The lost-query guard on and off: recall tails gained, p50 paid at equal ef_search and recall.

The guard as shipped (nearest_paintings, migration 0013), on the product's own path:
`search_by_image` for stored paintings, the guard's threshold as the tuner sets it, the
arms alternating query by query in one pass.

    python bench/run.py guard --set database=bench_100000
    python bench/run.py guard --set dist=clustered-sorted --size 20000   # built if absent

The threshold is measured as the tuner measures it: the 99th percentile of the exact
k-th-neighbour distance of its sample (200 stored paintings, seed 0), times a factor; each
``factors`` value is an arm of its own (tuning.GUARD_FACTOR is the shipped one). The queries
are another sample (seed 11) of stored paintings, each leaving itself out, their exact
answers from tuning.exact_neighbours.
"""

from __future__ import annotations

import time

import numpy as np

import hard_data
from common import connect, database_exists, print_table, server_url
from pgallery import tuning

def database(args) -> str:
    if args.database:
        return server_url(args.database)
    name = f"tune_{args.dist.replace('-', '_')}_{args.size}"
    if database_exists(name):
        return server_url(name)
    from benchmarks import tuner

    return tuner.load(hard_data.load(args.dist, args.size), name)["url"]


DEFAULTS = {"size": 20_000, "dist": "clustered-sorted", "database": "", "queries": 200,
            "factors": "1.1,1.2,1.5", "ef": "20,40,60,100,200"}
QUICK = {"ef": "20,40,100"}


def result_name(params) -> str:
    if params.database:
        return f"guard_{params.database}"
    if params.dist == "real":                       # a fixed collection: size does not apply
        return "guard_real"
    return f"guard_{params.dist}_{params.size}"


def run(ctx) -> dict:
    """On ``database`` (a bench database, e.g. bench_100000) if given, else on ``dist``'s
    collection at ``size`` (bench/lib/hard_data.py), built through the tuner benchmark's
    loader if absent."""
    args = ctx.params
    EF = [int(x) for x in args.ef.split(",")]
    guarded_ef = 40 if 40 in EF else EF[0]
    url = database(args)
    with connect(url, autocommit=True) as conn:
        model = tuning._active_model(conn)
        ids = np.array([r[0] for r in conn.execute(
            "SELECT painting_id FROM painting_embedding WHERE model = %s ORDER BY painting_id",
            (model,))])
        tuner_sample = np.sort(np.random.default_rng(0).choice(ids, 200, replace=False))
        q99 = float(np.quantile(tuning._exact(conn, model, tuner_sample, 10, 8192)[1], 0.99))
        taus = {f"x{f}": float(f) * q99 for f in args.factors.split(",")}
        picked = np.sort(np.random.default_rng(11).choice(ids, args.queries, replace=False))
        files = dict(conn.execute("SELECT painting_id, image_file FROM painting"
                                  " WHERE painting_id = ANY(%s)", (picked.tolist(),)).fetchall())
        truth = tuning.exact_neighbours(conn, model, picked, 10)
        statement = ("SELECT painting_id, distance FROM search_by_image(%s, k => 10,"
                     " model => %s,"
                     " ef_search => %s)")
        rows = []
        report = {"q99": q99, "taus": taus, "rows": len(ids), "queries": len(picked),
                  "by_ef": {}}
        names = ["off", *taus]
        for ef in EF:
            arms = {name: ([], []) for name in names}
            kth = []            # the unguarded page's k-th distance: what the guard tests
            for n, pid in enumerate(picked):
                order = names[n % len(names):] + names[:n % len(names)]    # rotating
                for arm in order:
                    conn.execute("SELECT set_config('pgallery.lost_query_distance', %s, false)",
                                 ("" if arm == "off" else repr(taus[arm]),))
                    t = time.perf_counter()
                    page = conn.execute(statement, (files[int(pid)], model, ef),
                                        prepare=True).fetchall()
                    arms[arm][1].append(time.perf_counter() - t)
                    got = [r[0] for r in page]
                    if arm == "off":
                        kth.append(page[-1][1] if len(page) == 10 else np.inf)
                    arms[arm][0].append(len(set(got) & set(truth[int(pid)])) / 10)
            entry = {}
            for arm, (recalls, times) in arms.items():
                entry[arm] = {**tuning.recall_tail(recalls),
                              "p50_ms": float(np.median(times) * 1000),
                              "p95_ms": float(np.percentile(times, 95) * 1000)}
            off = np.array(arms["off"][1])
            for arm in taus:
                on = np.array(arms[arm][1])
                entry[arm]["paired_median_ratio"] = float(np.median(on / off))
                entry[arm]["paired_mean_ratio"] = float(on.mean() / off.mean())
                entry[arm]["retried_share"] = float(np.mean(np.array(kth) > taus[arm]))
            report["by_ef"][ef] = entry
            for arm in names:
                e = entry[arm]
                rows.append({"ef_search": ef, "guard": arm, "tau": taus.get(arm),
                             **{k: e[k] for k in ("mean", "p5", "share_below_half", "zero",
                                                  "p50_ms", "p95_ms")},
                             "paired_median": e.get("paired_median_ratio"),
                             "paired_mean": e.get("paired_mean_ratio"),
                             "retried": e.get("retried_share")})
    # at the same mean recall: each arm at ef_search 40 (or the smallest measured) against
    # the smallest unguarded
    # ef_search that reaches its mean
    report["same_mean"] = {}
    for arm in taus:
        target = report["by_ef"][guarded_ef][arm]["mean"]
        same = next((ef for ef in EF if report["by_ef"][ef]["off"]["mean"] >= target), None)
        report["same_mean"][arm] = {
            "guarded_ef": guarded_ef, "mean": target, "unguarded_ef": same,
            "p50_ratio_guarded_to_unguarded": None if same is None else
            report["by_ef"][guarded_ef][arm]["p50_ms"]
            / report["by_ef"][same]["off"]["p50_ms"]}
    print_table(f"lost-query guard, q99 {q99:.3f}, {len(ids):,} rows", rows)
    print(report["same_mean"])
    report["distribution"] = "datagen" if args.database.startswith("bench_") else \
        (args.database or args.dist)
    return report

