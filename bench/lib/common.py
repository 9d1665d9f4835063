"""Shared plumbing for the benchmarks: the bench server and databases, timing, latency
and recall tails, printed tables. (The result files are bench/lib/result.py's.)

Every benchmark uses its own embedded PostgreSQL under ``bench/.work/pg`` (or DATABASE_URL's
server when set: then databases are created next to the one it names), so benchmarks never
touch a developer's ``.pgallery`` or the test servers.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO = BENCH_DIR.parent
# generated data and the bench server; PGALLERY_BENCH_WORK moves it (the tests do)
WORK = Path(os.environ.get("PGALLERY_BENCH_WORK") or BENCH_DIR / ".work")
RESULTS = BENCH_DIR / "results"
MODEL = "bench/synthetic"


def _real_gallery() -> Path:
    """The 634 real images (SemArt layout): $PGALLERY_REAL_GALLERY, else the checkout's
    ../shared/data/real-gallery (a worktree's ../../shared)."""
    if os.environ.get("PGALLERY_REAL_GALLERY"):
        return Path(os.environ["PGALLERY_REAL_GALLERY"])
    candidates = [up / "shared" / "data" / "real-gallery" for up in REPO.parents[:2]]
    return next((c for c in candidates if c.is_dir()), candidates[0])


REAL_GALLERY = _real_gallery()

sys.path.insert(0, str(REPO / "cli"))

from pgallery import migrations  # noqa: E402
from pgallery.database import connect  # noqa: E402
from pgallery.database.embedded import EmbeddedServer  # noqa: E402


class Skipped(Exception):
    """Raised by a benchmark's run() that cannot run here (what it needs is missing): the
    runner prints the reason, writes no result (the previous one stays) and goes on."""


# -- server and databases ----------------------------------------------------------------------

def server_url(database: str = "postgres") -> str:
    """URL of a database on the bench server (started on first use)."""
    base = os.environ.get("DATABASE_URL")
    if base:
        parts = urlsplit(base)
        if parts.scheme not in ("postgresql", "postgres"):
            raise SystemExit("DATABASE_URL must be a postgresql:// URL")
        return urlunsplit(parts._replace(path="/" + quote(database, safe="")))
    WORK.mkdir(parents=True, exist_ok=True)
    WORK.chmod(0o755)
    server = EmbeddedServer(WORK / "pg")
    server.ensure_running()
    return server.url(database)


def fresh_database(name: str, migrate: bool = True) -> str:
    """Drop and recreate database ``name``; migrated to head unless told otherwise."""
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server_url(name)
    if migrate:
        migrations.upgrade(url)
    return url


def database_exists(name: str) -> bool:
    with psycopg.connect(server_url("postgres"), autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (name,)).fetchone() is not None


def server_facts(conn) -> dict:
    """Versions and the settings that shape every figure."""
    facts = {"postgres": conn.execute("SHOW server_version").fetchone()[0]}
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
    facts["pgvector"] = row[0] if row else None
    for name in ("shared_buffers", "work_mem", "maintenance_work_mem",
                 "max_parallel_maintenance_workers", "max_parallel_workers_per_gather",
                 "hnsw.ef_search", "ivfflat.probes", "jit"):
        try:
            facts[name] = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
        except psycopg.Error:
            facts[name] = None
    facts["cpus"] = os.cpu_count()
    facts["machine"] = platform.machine()
    return facts


def relation_size(conn, name: str) -> int:
    row = conn.execute("SELECT pg_total_relation_size(to_regclass(%s))", (name,)).fetchone()
    return int(row[0] or 0)


# -- timing ------------------------------------------------------------------------------------

@contextmanager
def stopwatch():
    """with stopwatch() as t: ...; t() -> seconds elapsed (frozen at exit)."""
    start = time.perf_counter()
    end = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def percentiles(samples_s: list[float]) -> dict:
    """Latency tails in milliseconds of samples in seconds: p5, p50, p95 and the mean."""
    ms = np.asarray(samples_s) * 1000.0
    return {"p5_ms": float(np.percentile(ms, 5)), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean())}


def recall_tails(recalls) -> dict:
    """Per-query recall summarised with its tail: the mean, the 5th percentile, the share
    of queries under 0.5 (lost) and the number at 0."""
    r = np.asarray(list(recalls), dtype=float)
    if not len(r):
        return {"recall_mean": None, "recall_p5": None, "lost_share": None, "zero": 0}
    return {"recall_mean": float(r.mean()), "recall_p5": float(np.percentile(r, 5)),
            "lost_share": float((r < 0.5).mean()), "zero": int((r == 0).sum())}


def median(values):
    return float(statistics.median(values))


def run_clients(make_worker, clients: int, seconds: float) -> dict:
    """Run ``clients`` threads, each calling the callable ``make_worker(i)`` returned, as
    often as it can for ``seconds``; returns queries/s over all of them.

    Each worker has its own connection; psycopg releases the GIL while waiting on the
    server, so two threads keep two backends busy."""
    workers = [make_worker(i) for i in range(clients)]
    counts = [0] * clients
    stop = threading.Event()

    def loop(i):
        w = workers[i]
        j = 0
        while not stop.is_set():
            w(j)
            j += 1
        counts[i] = j

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"clients": clients, "qps": sum(counts) / elapsed, "queries": sum(counts)}


def recall_at_k(got: list, truth: list, k: int = 10) -> float:
    if not truth:
        return 1.0
    return len(set(got[:k]) & set(truth[:k])) / min(k, len(truth))


# -- printed tables ----------------------------------------------------------------------

def print_table(title: str, rows: list[dict], columns: list[str] | None = None) -> None:
    """A plain aligned table on stdout (floats to 3 significant places)."""
    if not rows:
        print(f"\n{title}: (no rows)")
        return
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            if v == 0 or abs(v) >= 100:
                return f"{v:,.0f}"
            return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    sys.stdout.flush()


def fmt_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


__all__ = ["BENCH_DIR", "MODEL", "REAL_GALLERY", "REPO", "RESULTS", "Skipped", "WORK", "connect",
           "database_exists",
           "fmt_bytes", "fresh_database", "median", "percentiles", "print_table",
           "recall_at_k", "recall_tails", "relation_size", "run_clients", "server_facts",
           "server_url", "stopwatch"]


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib (a bench
    extra: pip install -e '.[bench]') is not installed: the figures are the JSON result,
    a plot only draws them, so a benchmark without it still runs and says so."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot drawn")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
