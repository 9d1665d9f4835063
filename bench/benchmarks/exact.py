"""Exact search (exact => true): latency tails, and whether every answer equals a full scan's.

    python bench/run.py exact --size 100000

On bench_<size> (datagen's mixture, bench/lib/benchdb.py): ``queries`` random unit
vectors and as many stored vectors plus a little noise, each answered by
`search_by_vector(q, exact => true)` (the compact half-precision copy scanned, candidates
re-ranked on the full vectors) ``rounds`` times, and once by a plain full-precision scan
without parallel workers (the reference: ORDER BY embedding <=> q, painting_id). The
result counts the answers equal to the reference's, in order.

The comparison with the exact path before the compact copy (revision 0012: 637 -> 189 ms
at 100k on a busy machine, 299 -> 70 ms on a quiet one) was a one-off, measured by a
script that downgraded a copy of the database; bench/README.md keeps its figures.
"""

from __future__ import annotations

import numpy as np

import benchdb
from common import connect, percentiles, print_table

REFERENCE = ("SELECT p.image_file FROM painting_embedding e JOIN painting p USING (painting_id)"
             " ORDER BY e.embedding <=> %s, e.painting_id LIMIT 10")
EXACT = "SELECT image_file FROM search_by_vector(%s, exact => true)"

DEFAULTS = {"size": 100_000, "queries": 20, "rounds": 3}
QUICK = {"queries": 10, "rounds": 1}


def timed(conn, statement, queries) -> tuple[list[float], list[list[str]]]:
    times, answers = [], []
    for q in queries:
        rows, t = _call(conn, statement, q)
        times.append(t)
        answers.append(rows)
    return times, answers


def _call(conn, statement, q):
    import time

    start = time.perf_counter()
    rows = [r[0] for r in conn.execute(statement, (q,)).fetchall()]
    return rows, time.perf_counter() - start


def run(ctx) -> dict:
    a = ctx.params
    db = benchdb.ensure(a.size)
    rng = np.random.default_rng(15)
    queries = [v / np.linalg.norm(v) for v in
               rng.standard_normal((a.queries, 1024)).astype(np.float32)]
    with connect(db["url"], autocommit=True) as conn:
        stored = [np.asarray(r[0].to_numpy(), np.float32) for r in conn.execute(
            "SELECT embedding FROM painting_embedding ORDER BY hashint8(painting_id)"
            " LIMIT %s", (a.queries,))]
        queries += [v + 0.01 * rng.standard_normal(1024).astype(np.float32) for v in stored]
        timed(conn, EXACT, queries[:2])                       # warm: plans and caches
        times, answers = [], None
        for _ in range(a.rounds):
            t, answers = timed(conn, EXACT, queries)
            times += t
        conn.execute("SET max_parallel_workers_per_gather = 0")
        reference_times, reference = timed(conn, REFERENCE, queries)
    row = {"method": "search_by_vector exact", **percentiles(times),
           "equal_to_reference": sum(x == y for x, y in zip(answers, reference)),
           "queries": len(queries)}
    ref = {"method": "full-precision scan (reference)", **percentiles(reference_times),
           "queries": len(queries)}
    print_table(f"exact search on {a.size:,} rows", [row, ref])
    return {"distribution": "datagen", "exact": row, "reference_scan": ref,
            "ratio_p50_to_reference": row["p50_ms"] / ref["p50_ms"]}
