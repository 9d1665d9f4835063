"""An existing database at revision 0012 brought to head: nothing lost, nothing rebuilt.

    python bench/upgrade_check.py --database bench_100000_at_0012

Copies the given database (so the original stays at its revision), records what a user
would notice (row counts per table, every index's file node, the results and timings of
more-like-this and vector searches, in-server), runs pgallery's migrations to head, and
records the same again. Prints both and the ratios; writes bench/results/upgrade_check.json.
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

TABLES = ("painting", "painting_embedding", "embedding_model", "prompt_embedding",
          "embedding_failure")


def snapshot(url: str, files: list[str], vectors: list[np.ndarray], runs: int) -> dict:
    with connect(url, autocommit=True) as conn:
        counts = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(t))).fetchone()[0] for t in TABLES}
        indexes = dict(conn.execute(
            "SELECT c.relname, c.relfilenode FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
            " WHERE t.relnamespace = current_schema()::regnamespace").fetchall())
        results, times = {}, {"image": [], "vector": []}
        for _ in range(runs):
            for f in files:
                t = time.perf_counter()
                rows = conn.execute("SELECT image_file FROM search_by_image(%s, k => 10)",
                                    (f,)).fetchall()
                times["image"].append(time.perf_counter() - t)
                results[f"image:{f}"] = [r[0] for r in rows]
            for i, v in enumerate(vectors):
                t = time.perf_counter()
                rows = conn.execute("SELECT image_file FROM search_by_vector(%s, k => 10)",
                                    (v,)).fetchall()
                times["vector"].append(time.perf_counter() - t)
                results[f"vector:{i}"] = [r[0] for r in rows]
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    return {"revision": revision, "counts": counts, "indexes": indexes, "results": results,
            "p50_ms": {k: statistics.median(v) * 1000 for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    copy = f"{args.database}_upgrade_check"
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(copy)))
        t = time.perf_counter()
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(copy), sql.Identifier(args.database)))
        print(f"copied {args.database} in {time.perf_counter() - t:.0f} s")
    url = server_url(copy)
    with connect(url, autocommit=True) as conn:
        files = [r[0] for r in conn.execute(
            "SELECT image_file FROM painting ORDER BY hashint8(painting_id) LIMIT %s",
            (args.queries,))]
        rng = np.random.default_rng(12)
        vectors = [v / np.linalg.norm(v) for v in rng.standard_normal((args.queries, 1024))
                   .astype(np.float32)]
    before = snapshot(url, files, vectors, args.runs)
    t = time.perf_counter()
    migrations.upgrade(url)
    upgrade_seconds = time.perf_counter() - t
    after = snapshot(url, files, vectors, args.runs)
    same = sum(before["results"][q] == after["results"][q] for q in before["results"])
    report = {
        "database": args.database, "revision_before": before["revision"],
        "revision_after": after["revision"], "upgrade_seconds": upgrade_seconds,
        "counts_before": before["counts"], "counts_after": after["counts"],
        "indexes_rebuilt": sorted(n for n, node in before["indexes"].items()
                                  if after["indexes"].get(n) != node),
        "new_indexes": sorted(set(after["indexes"]) - set(before["indexes"])),
        "queries": len(before["results"]), "same_results": same,
        "p50_ms_before": before["p50_ms"], "p50_ms_after": after["p50_ms"],
        "p50_ratio": {k: after["p50_ms"][k] / before["p50_ms"][k] for k in before["p50_ms"]},
    }
    print(json.dumps(report, indent=1))
    (RESULTS / "upgrade_check.json").write_text(json.dumps(report, indent=1) + "\n")
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(copy)))


if __name__ == "__main__":
    main()
