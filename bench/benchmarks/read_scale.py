"""Read scale: searches a second through `pgallery serve` on the primary, on one hot standby, and on two.

    python bench/run.py read_scale                              # 20k paintings, 16 clients
    python bench/run.py read_scale --size 5000 --quick

A primary of its own (an embedded server under bench/.work/read-scale, so that its
standbys copy only this collection, not the bench server's other databases) holds
bench_<size> (bench/lib/benchdb.py); two standbys are made with pgallery's own
database/replica.py (`pgallery db replica create`). Three `pgallery serve` processes (one
worker, ``pool`` connections) answer `GET /api/search?similar=<painting>&k=10` for random
paintings over keep-alive connections, as bench/benchmarks/web.py's clients do:

    primary       DATABASE_URL only (no --read-url)
    1 standby     --read-url naming one standby
    2 standbys    --read-url over both (`pgallery db replica url --all`)

Phases interleave round by round, so the machine's background load hits all alike; each
reports throughput, p5/p50/p95/p99, errors and their share, the CPU per request of the
server process and of the PostgreSQL backends serving it (found by application_name on
every server), and the share of the searches each server answered (pg_stat_statements'
calls of search_by_image on each). Every server runs on this machine's cores, so a standby
adds no CPU: the figures say what read scale costs and how it spreads, not what a standby
on a machine of its own would add.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import psycopg

import benchdb
from common import WORK, connect, percentiles, print_table
from pgallery.database.embedded import EmbeddedServer
from pgallery.database.multihost import multi_host_url
from pgallery.database.replica import Replica

from benchmarks.web import (CpuMeter, backend_pids, process_tree, run_phase, start_server,
                            web_caller)

DEFAULTS = {"size": 20_000, "clients": 16, "seconds": 60.0, "single_seconds": 12.0,
            "rounds": 4, "k": 10, "pool": 16, "keep": False}
QUICK = {"seconds": 6.0, "single_seconds": 2.0, "rounds": 1}
LIBRARIES = ("uvicorn", "psycopg", "psycopg-pool")
APP = "read_scale_server"


@contextmanager
def bench_server(url: str):
    """benchdb's databases on ``url``'s server for the block (it reads DATABASE_URL)."""
    before = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = before


def named(url: str, application: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["application_name"] = application
    return psycopg.conninfo.make_conninfo(**info)


def searches(monitors: dict[str, psycopg.Connection]) -> dict[str, int]:
    """Each server's search_by_image calls so far (pg_stat_statements, counted in shared
    memory as each statement ends: pg_stat_database's counters are flushed up to 10 s
    later, which blurs one phase into the next)."""
    return {name: int(m.execute("SELECT coalesce(sum(calls), 0) FROM public.pg_stat_statements"
                                " WHERE query LIKE '%%search_by_image(%%'").fetchone()[0])
            for name, m in monitors.items()}


def run(ctx) -> dict:
    args = ctx.params
    home = WORK / "read-scale"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    primary = EmbeddedServer(home / "pg")
    primary.ensure_running()
    with bench_server(primary.url("postgres")):
        built = benchdb.ensure(args.size, log=ctx.log)
    database = f"bench_{args.size}"
    standbys = [Replica(primary, f"bench{i}") for i in (1, 2)]
    for standby in standbys:
        standby.create()
        standby.wait_for_replay(600)
    servers = {"primary": primary, "standby 1": standbys[0], "standby 2": standbys[1]}
    url = primary.url(database)
    reads = {
        "primary": None,
        "1 standby": named(standbys[0].url(database), APP + "_1"),
        "2 standbys": multi_host_url([s.url(database) for s in standbys],
                                     application_name=APP + "_2"),
    }
    with connect(url, autocommit=True) as conn:   # replicated to the standbys below
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
    for standby in standbys:
        standby.wait_for_replay(600)
    with connect(url) as conn:
        files = [r[0] for r in conn.execute(
            "SELECT image_file FROM painting ORDER BY random() LIMIT 2000")]
    monitors = {name: connect(s.url(database), autocommit=True)
                for name, s in servers.items()}
    processes, phases, meters = {}, {}, {}
    try:
        for label, read_url in reads.items():
            app_name = APP + {"primary": "_0", "1 standby": "_1", "2 standbys": "_2"}[label]
            extra = ("--read-url", read_url) if read_url else ()
            process, host, port = start_server(url, 1, args.pool, app_name, extra)
            processes[label] = process
            phases[label] = web_caller(host, port, files, args.k)

            def backends(a=app_name):
                return [pid for m in monitors.values() for pid in backend_pids(m, a)]
            meters[label] = {"server": CpuMeter(lambda p=process.pid: process_tree(p)),
                             "postgres": CpuMeter(backends)}
        for label, make in phases.items():     # warm-up: caches, every pool connection
            run_phase(make, args.clients, 3.0, {})
        results: dict[tuple[str, int], dict] = {}
        loads: list[float] = []
        for round_ in range(args.rounds):
            for clients, seconds in ((args.clients, args.seconds), (1, args.single_seconds)):
                for label, make in phases.items():
                    loads.append(os.getloadavg()[0])
                    print(f"round {round_ + 1}/{args.rounds}: {label}, {clients} client(s)"
                          f" (load average {loads[-1]:.2f})", file=sys.stderr)
                    before = searches(monitors)
                    got = run_phase(make, clients, seconds / args.rounds, meters[label])
                    after = searches(monitors)
                    total = results.setdefault((label, clients), {
                        "requests": 0, "seconds": 0.0, "samples": [], "errors": 0,
                        "cpu_s": {}, "answered": {}})
                    for key in ("requests", "seconds", "errors"):
                        total[key] += got[key]
                    total["samples"] += got["samples"]
                    for party, value in got["cpu_s"].items():
                        total["cpu_s"][party] = total["cpu_s"].get(party, 0.0) + value
                    for name in servers:
                        total["answered"][name] = (total["answered"].get(name, 0)
                                                + after[name] - before[name])
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for monitor in monitors.values():
            monitor.close()
        if not args.keep:
            for standby in standbys:
                standby.destroy()
            primary.destroy()
            shutil.rmtree(home, ignore_errors=True)

    rows = []
    for (label, clients), r in results.items():
        answered = sum(r["answered"].values()) or 1
        rows.append({
            "reads on": label, "clients": clients, "requests": r["requests"],
            "req/s": round(r["requests"] / r["seconds"], 1),
            **{k: round(v, 2) for k, v in percentiles(r["samples"]).items()},
            "p99_ms": round(float(np.percentile(r["samples"], 99)) * 1000, 2),
            "errors": r["errors"], "failed_share": round(r["errors"] / max(1, r["requests"]), 4),
            "server_cpu_ms": round(1000 * r["cpu_s"]["server"] / r["requests"], 3),
            "postgres_cpu_ms": round(1000 * r["cpu_s"]["postgres"] / r["requests"], 3),
            **{f"share {name}": round(count / answered, 3) for name, count in r["answered"].items()},
        })
    print_table(f"pgallery serve reading from the primary or hot standbys: {database}, "
                f"k = {args.k}, pool {args.pool}", rows)
    base = {r["clients"]: r for r in rows if r["reads on"] == "primary"}
    ratios = {f"{r['clients']} client(s), {r['reads on']} / primary": {
        "throughput": round(r["req/s"] / base[r["clients"]]["req/s"], 3),
        "p50": round(r["p50_ms"] / base[r["clients"]]["p50_ms"], 3),
        "p95": round(r["p95_ms"] / base[r["clients"]]["p95_ms"], 3)}
        for r in rows if r["reads on"] != "primary"}
    for key, value in ratios.items():
        print(f"{key}: throughput x{value['throughput']}, p50 x{value['p50']}, "
              f"p95 x{value['p95']}")
    load = os.getloadavg()
    return {"distribution": "datagen", "phases": rows, "ratios": ratios,
            "cores": os.cpu_count(), "built": {k: v for k, v in built.items() if k != "url"},
            "loadavg_at_phase_starts": [round(x, 2) for x in loads],
            "loadavg_after": list(load),
            "errors_total": sum(r["errors"] for r in rows)}
