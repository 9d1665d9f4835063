"""Load test of `pgallery serve`: 16 clients searching over HTTP for 60 s, against the same
searches called directly in PostgreSQL, in the same run on the same database.

    python bench/web_load.py                          # 100k paintings, 16 clients, 60 s
    python bench/web_load.py --size 20000 --seconds 20

The server is the real command (`pgallery serve --port 0`, a subprocess on 127.0.0.1 only,
so it does not share the clients' interpreter). Every client keeps one HTTP/1.1 connection
(http.client, lighter than requests) and asks `GET /api/search?similar=<painting>&k=10`
for random paintings of bench_<size> (built by benchdb.py). The direct baselines call, with
one psycopg connection per client, the SQL the web request runs, `search_by_image`, and
`search_by_vector` with new query vectors. Each is measured at 16 clients (the load test)
and at 1 client (the web layer's own cost per request, without queueing), phases
interleaved round by round so that the machine's background load hits all alike.

The web server's own CPU time per request (from /proc) is reported too: on a machine
shared with other work, latencies carry everyone's queueing, but CPU seconds are the web
layer's cost alone.

Prints a table and writes bench/results/web_load_<size>.json: throughput, p50/p95 per
request, errors, and the ratios web / direct.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import numpy as np

import benchdb
import datagen
from common import REPO, connect, percentiles, print_table, server_facts, write_result


def start_server(url: str) -> tuple[subprocess.Popen, str, int]:
    env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(REPO / "cli"))
    process = subprocess.Popen(
        [sys.executable, "-m", "pgallery", "serve", "--host", "127.0.0.1", "--port", "0",
         "--no-access-log"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"http://(127\.0\.0\.1):(\d+)/", line)
        if found:
            return process, found.group(1), int(found.group(2))
        if process.poll() is not None:
            break
    process.kill()
    raise SystemExit("pgallery serve did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(make_call, clients: int, seconds: float) -> dict:
    """``clients`` threads calling their own ``make_call(i)()`` for ``seconds``; latencies
    of every call and the errors (exceptions or non-200 answers)."""
    calls = [make_call(i) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = threading.Event()

    def loop(i):
        call, own = calls[i], latencies[i]
        while not stop.is_set():
            t = time.perf_counter()
            try:
                ok = call()
            except Exception:  # noqa: BLE001 - a load test counts every failure
                ok = False
            own.append(time.perf_counter() - t)
            if not ok:
                errors[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    samples = [s for own in latencies for s in own]
    return {"requests": len(samples), "seconds": elapsed, "samples": samples,
            "errors": sum(errors)}


def web_caller(host: str, port: int, files: list[str], k: int):
    def make(i):
        rng = random.Random(1000 + i)
        conn = http.client.HTTPConnection(host, port, timeout=30)

        def call():
            path = f"/api/search?similar={quote(rng.choice(files), safe='')}&k={k}"
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            return response.status == 200 and body.startswith(b'{"results":[{')
        return call
    return make


def sql_caller(url: str, statement: str, args_for):
    def make(i):
        rng = random.Random(2000 + i)
        conn = connect(url, autocommit=True)
        conn.execute("SET ROLE pgallery_reader")   # as the web server searches
        conn.execute("SELECT 1")

        def call():
            rows = conn.execute(statement, args_for(rng), prepare=True).fetchall()
            return len(rows) > 0
        return call
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="per phase at --clients (split over --rounds)")
    parser.add_argument("--single-seconds", type=float, default=15.0,
                        help="per phase at 1 client (split over --rounds)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    built = benchdb.ensure(args.size)
    url = built["url"]
    with connect(url) as conn:
        files = [r[0] for r in conn.execute(
            "SELECT image_file FROM painting ORDER BY random() LIMIT 2000")]
        facts = server_facts(conn)
    queries = datagen.queries(200)
    process, host, port = start_server(url)
    phases = {
        "web GET /api/search?similar=": web_caller(host, port, files, args.k),
        "direct search_by_image": sql_caller(
            url, "SELECT * FROM search_by_image(%s, k => %s)",
            lambda rng: (rng.choice(files), args.k)),
        "direct search_by_vector": sql_caller(
            url, "SELECT * FROM search_by_vector(%s, k => %s)",
            lambda rng: (queries[rng.randrange(len(queries))], args.k)),
    }
    results: dict[tuple[str, int], dict] = {}
    try:
        # warm-up: caches, prepared statements, the server's thread pool
        for make in phases.values():
            run_phase(make, 2, 2.0)
        for round_ in range(args.rounds):
            for clients, seconds in ((args.clients, args.seconds), (1, args.single_seconds)):
                for name, make in phases.items():
                    print(f"round {round_ + 1}/{args.rounds}: {name}, {clients} client(s)",
                          file=sys.stderr)
                    cpu = cpu_seconds(process.pid)
                    got = run_phase(make, clients, seconds / args.rounds)
                    got["server_cpu_s"] = cpu_seconds(process.pid) - cpu
                    total = results.setdefault((name, clients), {
                        "requests": 0, "seconds": 0.0, "samples": [], "errors": 0,
                        "server_cpu_s": 0.0})
                    for key in ("requests", "seconds", "errors", "server_cpu_s"):
                        total[key] += got[key]
                    total["samples"] += got["samples"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()

    rows = []
    for (name, clients), r in results.items():
        rows.append({"phase": name, "clients": clients, "requests": r["requests"],
                     "req/s": round(r["requests"] / r["seconds"], 1),
                     **{k: round(v, 2) for k, v in percentiles(r["samples"]).items()},
                     "errors": r["errors"],
                     "server_cpu_ms_per_req": (round(1000 * r["server_cpu_s"] / r["requests"], 3)
                                               if name.startswith("web") else None)})

    def ratio(metric, clients, base):
        web = next(x for x in rows if x["phase"].startswith("web") and x["clients"] == clients)
        other = next(x for x in rows if x["phase"] == base and x["clients"] == clients)
        return round(web[metric] / other[metric], 3)

    ratios = {}
    for clients in (args.clients, 1):
        for base in ("direct search_by_image", "direct search_by_vector"):
            key = f"{clients} client(s), web / {base.split()[1]}"
            ratios[key] = {"p50": ratio("p50_ms", clients, base),
                           "p95": ratio("p95_ms", clients, base),
                           "throughput": ratio("req/s", clients, base)}
    print_table(f"pgallery serve under load: bench_{args.size}, k = {args.k}", rows)
    for key, value in ratios.items():
        print(f"{key}: p50 x{value['p50']}, p95 x{value['p95']}, "
              f"throughput x{value['throughput']}")
    load = os.getloadavg()
    write_result(f"web_load_{args.size}", {
        "size": args.size, "k": args.k, "clients": args.clients, "seconds": args.seconds,
        "single_seconds": args.single_seconds, "rounds": args.rounds, "phases": rows,
        "ratios": ratios, "server": facts, "loadavg_after": load,
        "errors_total": sum(r["errors"] for r in rows)})


if __name__ == "__main__":
    main()
