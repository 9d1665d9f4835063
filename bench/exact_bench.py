"""Exact search (exact => true) before and after the compact copy (migration 0013), in one
run on a copy of a bench database: the same queries at revision 0012 (full vectors read
through TOAST) and at head (painting_embedding_half scanned, candidates re-ranked), and
whether every answer equals a plain full-precision scan's.

    python bench/exact_bench.py --database bench_100000 --queries 20 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import psycopg
from psycopg import sql

from common import RESULTS, server_url
from pgallery import migrations
from pgallery.database import connect

REFERENCE = ("SELECT p.image_file FROM painting_embedding e JOIN painting p USING (painting_id)"
             " ORDER BY e.embedding <=> %s, e.painting_id LIMIT 10")


def timed(conn, statement, queries):
    times, answers = [], []
    for q in queries:
        t = time.perf_counter()
        answers.append([r[0] for r in conn.execute(statement, (q,)).fetchall()])
        times.append(time.perf_counter() - t)
    return times, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    copy = f"{args.database}_exact"
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(copy)))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(copy), sql.Identifier(args.database)))
    url = server_url(copy)
    rng = np.random.default_rng(15)
    queries = [v / np.linalg.norm(v) for v in
               rng.standard_normal((args.queries, 1024)).astype(np.float32)]
    with connect(url, autocommit=True) as conn:
        stored = [np.asarray(r[0].to_numpy(), np.float32) for r in conn.execute(
            "SELECT embedding FROM painting_embedding ORDER BY hashint8(painting_id)"
            " LIMIT %s", (args.queries,))]
    queries += [v + 0.01 * rng.standard_normal(1024).astype(np.float32) for v in stored]
    exact = "SELECT image_file FROM search_by_vector(%s, exact => true)"
    times = {"0012": [], "head": []}
    answers = {}
    migrations.upgrade(url, "0012")
    for _ in range(args.rounds):                       # interleaved: 0012, head, 0012, ...
        for revision in ("0012", "head"):
            migrations.upgrade(url, revision) if revision == "head" else \
                migrations.downgrade(url, "0012")
            with connect(url, autocommit=True) as conn:
                t, a = timed(conn, exact, queries)
                times[revision] += t
                answers[revision] = a
    with connect(url, autocommit=True) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        t, reference = timed(conn, REFERENCE, queries)
    report = {
        "database": args.database, "queries": len(queries), "rounds": args.rounds,
        "p50_ms": {k: statistics.median(v) * 1000 for k, v in times.items()},
        "p95_ms": {k: float(np.percentile(v, 95) * 1000) for k, v in times.items()},
        "reference_scan_p50_ms": statistics.median(t) * 1000,
        "same_as_reference": {k: sum(x == y for x, y in zip(v, reference))
                              for k, v in answers.items()},
    }
    report["ratio_head_to_0012"] = report["p50_ms"]["head"] / report["p50_ms"]["0012"]
    print(json.dumps(report, indent=1))
    name = f"exact_{args.database.removeprefix('bench_')}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=1) + "\n")
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(copy)))


if __name__ == "__main__":
    main()
