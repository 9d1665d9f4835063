"""Searches keep answering while a load and an index rebuild run.

For each client count, the bundled pgbench runs search functions (search_by_image, plain
and filtered) for ``seconds`` against a loaded database, three times:

    idle      nothing else running (the baseline)
    load      a loader writes new paintings meanwhile, through pgallery's own path
              (COPY into the staging table + merge_staged_paintings, one batch per
              transaction), which also inserts into the HNSW graph
    rebuild   the load, plus REINDEX INDEX CONCURRENTLY of the HNSW index and
              CREATE INDEX CONCURRENTLY of an IVFFlat index (then DROP INDEX CONCURRENTLY)

Errors are pgbench's failed transactions plus aborted clients (an SQL error aborts a
pgbench client); they must be 0. Latency percentiles come from pgbench's per-transaction
log (-l).

    python bench/run.py concurrency                   # 20k paintings, 2/4/8 clients, 20 s
    python bench/run.py concurrency --size 5000 --set seconds=8 --set clients=2,4
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

import datagen
from benchdb import INDEXED, records
from common import MODEL, connect, fresh_database, print_table, server_url
from pgallery.database.embedded import bin_dir
from pgallery.loading.after_load import defer_hnsw_indexes, restore_indexes
from pgallery.loading.writer import register_model, write_batch

SEARCH = """\\set i random(1, {n})
SELECT count(*) FROM search_by_image((SELECT image_file FROM painting
                                      WHERE painting_id = :i), k => 10);
"""
FILTERED = """\\set i random(1, {n})
SELECT count(*) FROM search_by_image((SELECT image_file FROM painting
                                      WHERE painting_id = :i), k => 10, school => 'dutch');
"""
IVFFLAT_CONCURRENTLY = ("CREATE INDEX CONCURRENTLY painting_embedding_ivfflat_bench ON "
                        f"painting_embedding USING ivfflat (({INDEXED}) halfvec_cosine_ops) "
                        "WITH (lists = 100)")


def build(rows: int, extra: int) -> tuple[str, datagen.Dataset]:
    ds = datagen.dataset(rows + extra)
    url = fresh_database("bench_concurrency")
    with connect(url, autocommit=True) as conn:
        hnsw = defer_hnsw_indexes(conn, rows)
    with connect(url) as conn:
        register_model(conn, MODEL, datagen.DIM, "bench")
        for start in range(0, rows, 2000):
            write_batch(conn, MODEL, records(ds, start, min(rows, start + 2000)), start)
    with connect(url, autocommit=True) as conn:
        restore_indexes(conn, hnsw)
        conn.execute("ANALYZE")
    return url, ds


class Background:
    """The load (and optionally the index rebuilds) in threads, until stopped."""

    def __init__(self, url: str, ds: datagen.Dataset, next_row: int, rebuild: bool,
                 batch: int = 200):
        self.url, self.ds, self.next_row, self.batch = url, ds, next_row, batch
        self.rebuild = rebuild
        self.stop = threading.Event()
        self.loaded = 0
        self.errors: list[str] = []
        self.rebuilds: dict[str, float] = {}
        self.threads = [threading.Thread(target=self._load)]
        if rebuild:
            self.threads.append(threading.Thread(target=self._rebuild))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def _load(self):
        try:
            with connect(self.url) as conn:
                while not self.stop.is_set() and self.next_row + self.batch <= len(self.ds.vectors):
                    write_batch(conn, MODEL, records(self.ds, self.next_row,
                                                     self.next_row + self.batch),
                                self.next_row)
                    self.next_row += self.batch
                    self.loaded += self.batch
        except psycopg.Error as exc:
            self.errors.append(f"load: {exc}")

    def _rebuild(self):
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                time.sleep(1.0)
                for name, statement in [
                        ("reindex_hnsw_concurrently_s",
                         "REINDEX INDEX CONCURRENTLY painting_embedding_hnsw"),
                        ("create_ivfflat_concurrently_s", IVFFLAT_CONCURRENTLY),
                        ("drop_ivfflat_concurrently_s",
                         "DROP INDEX CONCURRENTLY painting_embedding_ivfflat_bench")]:
                    t = time.perf_counter()
                    conn.execute(statement)
                    self.rebuilds[name] = round(time.perf_counter() - t, 2)
        except psycopg.Error as exc:
            self.errors.append(f"rebuild: {exc}")


def pgbench(url: str, n: int, clients: int, seconds: int, workdir: Path) -> dict:
    """Run pgbench's search scripts; errors, throughput and latency percentiles."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    env = {**os.environ, "PGHOST": info["host"], "PGPORT": str(info["port"]),
           "PGUSER": info["user"], "PGPASSWORD": info["password"], "PGDATABASE": info["dbname"]}
    scripts = []
    for name, text, weight in (("search", SEARCH, 3), ("filtered", FILTERED, 1)):
        path = workdir / f"{name}.sql"
        path.write_text(text.format(n=n))
        scripts += ["-f", f"{path}@{weight}"]
    prefix = workdir / f"log_{clients}_{time.monotonic_ns()}"
    result = subprocess.run(
        [str(bin_dir() / "pgbench"), "-n", "-c", str(clients), "-j", str(min(clients, 2)),
         "-T", str(seconds), "-l", "--log-prefix", str(prefix), *scripts],
        env=env, capture_output=True, text=True)
    out = result.stdout + result.stderr
    latencies = []
    for log in glob.glob(f"{prefix}*"):
        with open(log) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3:
                    latencies.append(int(parts[2]) / 1000.0)  # microseconds -> ms
    failed = re.search(r"number of failed transactions: (\d+)", out)
    aborted = len(re.findall(r"client \d+ aborted", out))
    return {"latencies": latencies, "seconds": seconds,
            "errors": (int(failed.group(1)) if failed else 0) + aborted
                      + (0 if result.returncode == 0 else 1),
            "pgbench_tail": out.strip().splitlines()[-3:] if result.returncode else []}


def summarize(runs: list[dict]) -> dict:
    """One row from one or more pgbench runs: errors, throughput, latency percentiles."""
    latencies = [x for r in runs for x in r["latencies"]]
    lat = np.asarray(latencies) if latencies else np.asarray([float("nan")])
    return {
        "transactions": len(latencies),
        "errors": sum(r["errors"] for r in runs),
        "tps": round(len(latencies) / sum(r["seconds"] for r in runs), 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "max_ms": round(float(lat.max()), 2),
        "pgbench_runs": len(runs),
        "pgbench_tail": [line for r in runs for line in r["pgbench_tail"]],
    }


DEFAULTS = {"size": 20_000, "seconds": 20, "clients": "2,4,8"}
QUICK = {"seconds": 5, "clients": "2"}


def run(ctx) -> dict:
    """``size`` paintings loaded first; pgbench runs ``seconds`` per run for each of
    ``clients`` (comma-separated counts)."""
    args = ctx.params
    args.rows = args.size
    args.clients = [int(c) for c in str(args.clients).split(",")]

    per_run = 400 * args.seconds  # room for the loader's rows (it stops when they run out)
    extra = per_run * 4 * len(args.clients)
    print(f"building {args.rows} paintings (+{extra} for the loads) ...", flush=True)
    url, ds = build(args.rows, extra)
    next_row = args.rows
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for clients in args.clients:
            for scenario in ("idle", "load", "rebuild"):
                with connect(url) as conn:
                    n = conn.execute("SELECT count(*) FROM painting").fetchone()[0]
                if scenario == "idle":
                    row = summarize([pgbench(url, n, clients, args.seconds, Path(tmp))])
                    bg = None
                else:
                    with Background(url, ds, next_row, rebuild=scenario == "rebuild") as bg:
                        # keep searching until the rebuilds are over (at most 6 rounds)
                        runs = [pgbench(url, n, clients, args.seconds, Path(tmp))]
                        while (scenario == "rebuild" and len(runs) < 6
                               and bg.threads[-1].is_alive()):
                            runs.append(pgbench(url, n, clients, args.seconds, Path(tmp)))
                        row = summarize(runs)
                    next_row = bg.next_row
                row = {"clients": clients, "scenario": scenario, **row,
                       "rows_loaded_meanwhile": bg.loaded if bg else 0,
                       "background_errors": len(bg.errors) if bg else 0,
                       **(bg.rebuilds if bg else {})}
                if bg and bg.errors:
                    row["background_error_messages"] = bg.errors[:3]
                results.append(row)
                print(f"  {clients} clients, {scenario}: {row['tps']:.0f} tps, "
                      f"p95 {row['p95_ms']} ms, errors {row['errors']}", flush=True)
    print_table("search functions under pgbench while loading and rebuilding indexes", results,
                ["clients", "scenario", "transactions", "errors", "tps", "p50_ms", "p95_ms",
                 "max_ms", "rows_loaded_meanwhile", "reindex_hnsw_concurrently_s",
                 "create_ivfflat_concurrently_s"])
    total_errors = sum(r["errors"] + r["background_errors"] for r in results)
    # other work on the machine skews the latencies: record how busy it was
    print(f"total errors: {total_errors}")
    return {"distribution": "datagen", "load_average_at_end": list(os.getloadavg()),
            "total_errors": total_errors, "runs": results}

