"""The web layer's overhead: `pgallery serve` under 16 clients against the same SQL called directly.

16 clients searching over HTTP for 60 s, against the same searches called directly in
PostgreSQL, in the same run on the same database.

    python bench/run.py web                                   # 100k paintings, 16 clients, 60 s
    python bench/run.py web --size 20000 --set seconds=20
    python bench/run.py web --set servers=1x16,1x8,2x8        # WORKERSxCONNECTIONS each

The server is the real command (`pgallery serve --port 0`, a subprocess on 127.0.0.1 only,
so it does not share the clients' interpreter). Every client keeps one HTTP/1.1 keep-alive
connection and asks `GET /api/search?similar=<painting>&k=10` for random paintings of
bench_<size> (built by bench/lib/benchdb.py). The direct baselines call, with one psycopg connection
per client dropped to pgallery_reader as the server's are, the very statement the web
request sends (pgallery.search.run_search: `search_by_image(image_file => ..., k => ...,
model => ...)`, same k, same model argument, autocommit, prepared after a few calls as
psycopg does on any connection), and `search_by_vector` with new query vectors. The
server runs as each ``servers`` spec says, WORKERSxPOOL: by default 1x16 (one
connection per client, as the direct baseline has), 1x8 (`pgallery serve`'s default pool)
and 2x8 (`--workers 2`). Each is measured at 16 clients (the load test) and at 1 client (the web layer's own cost per
request, without queueing), phases interleaved round by round so that the machine's
background load hits all alike.

CPU time per request is reported for each party, from /proc: the web server (every
process of it), the PostgreSQL backends serving the phase (found by application_name,
so another benchmark on the same server is not counted) and this client process. On a
machine shared with other work, latencies carry everyone's queueing, but CPU seconds are
each party's own cost.

The figures: throughput, p5/p50/p95/p99 per request, errors (and the failed share of web
requests), CPU per request, and the ratios web / direct.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import numpy as np
import psycopg

import benchdb
import datagen
from common import MODEL, REPO, connect, percentiles, print_table
from pgallery import search as core

SERVER_APP = "web_load_server"
DIRECT_APP = "web_load_direct"


def with_application_name(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["application_name"] = name
    return psycopg.conninfo.make_conninfo(**info)


def start_server(url: str, workers: int, pool: int, application_name: str,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str, int]:
    env = dict(os.environ, DATABASE_URL=with_application_name(url, application_name),
               PYTHONPATH=str(REPO / "cli"))
    args = [sys.executable, "-m", "pgallery", "serve", "--host", "127.0.0.1", "--port", "0",
            "--no-access-log", "--workers", str(workers), "--pool-size", str(pool), *extra]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
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
    """User + system CPU time a process has used so far (Linux /proc); 0 once it is gone."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and its children (uvicorn's worker processes)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                pids.append(int(entry))
    return pids


class CpuMeter:
    """CPU seconds used between start() and stop() by a changing set of processes (those
    that exist at the end and were not counted at the start count from 0)."""

    def __init__(self, pids_now):
        self.pids_now = pids_now

    def start(self):
        self.before = {pid: cpu_seconds(pid) for pid in self.pids_now()}

    def stop(self) -> float:
        pids = set(self.pids_now()) | set(self.before)
        return sum(cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in pids)


def backend_pids(monitor: psycopg.Connection, application_name: str) -> list[int]:
    return [r[0] for r in monitor.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        " AND datname = current_database()", (application_name,))]


def run_phase(make_call, clients: int, seconds: float, meters: dict) -> dict:
    """``clients`` threads calling their own ``make_call(i)()`` for ``seconds``; latencies
    of every call, the errors (exceptions or wrong answers) and each meter's CPU seconds."""
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
    for meter in meters.values():
        meter.start()
    client_cpu = time.process_time()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    cpu = {name: meter.stop() for name, meter in meters.items()}
    cpu["client"] = time.process_time() - client_cpu
    for call in calls:
        call.close()
    samples = [s for own in latencies for s in own]
    return {"requests": len(samples), "seconds": elapsed, "samples": samples,
            "errors": sum(errors), "cpu_s": cpu}


class Http:
    """One keep-alive HTTP/1.1 connection, as lean as a client can be: the request bytes
    written in one send, the answer read by its Content-Length (the server always sends
    one). http.client parses headers in Python at about twice this client's CPU, which on
    two cores is CPU taken from the server being measured."""

    def __init__(self, host: str, port: int):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"Host: {host}:{port}\r\n\r\n".encode()
        self.buffer = b""

    def get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        data = self.buffer
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            body += chunk
        self.buffer = body[length:]
        return int(head[9:12]), body[:length]

    def close(self):
        self.sock.close()


def web_caller(host: str, port: int, files: list[str], k: int):
    def make(i):
        rng = random.Random(1000 + i)
        http = Http(host, port)

        def call():
            status, body = http.get(f"/api/search?similar={quote(rng.choice(files), safe='')}"
                                    f"&k={k}")
            return status == 200 and body.startswith(b'{"results":[{')
        call.close = http.close
        return call
    return make


def sql_caller(url: str, kind: str, query_for, k: int):
    """What the web request runs (pgallery.search.run_search), on a connection of its own."""
    def make(i):
        rng = random.Random(2000 + i)
        conn = connect(with_application_name(url, DIRECT_APP), autocommit=True)
        conn.execute("SET ROLE pgallery_reader")   # as the web server searches

        def call():
            rows = core.run_search(conn, kind, query_for(rng), k=k, model=MODEL)
            return len(rows) == k
        call.close = conn.close
        return call
    return make


DEFAULTS = {"size": 100_000, "clients": 16, "seconds": 60.0, "single_seconds": 15.0,
            "rounds": 3, "k": 10, "servers": "1x16,1x8,2x8"}
QUICK = {"seconds": 6.0, "single_seconds": 3.0, "rounds": 1, "servers": "1x8"}
LIBRARIES = ("uvicorn", "starlette", "psycopg", "psycopg-pool", "uvloop", "orjson")


def run(ctx) -> dict:
    """``seconds`` per phase at ``clients`` and ``single_seconds`` at 1 client, each split
    over ``rounds``; ``servers``: comma-separated WORKERSxPOOL specs (--workers,
    --pool-size)."""
    args = ctx.params
    args.servers = str(args.servers).split(",")

    built = benchdb.ensure(args.size)
    url = built["url"]
    with connect(url) as conn:
        files = [r[0] for r in conn.execute(
            "SELECT image_file FROM painting ORDER BY random() LIMIT 2000")]
    queries = datagen.queries(200)
    monitor = connect(url, autocommit=True)
    servers = {}
    phases = {}
    meters = {}
    try:
        for spec in args.servers:
            workers, pool = (int(x) for x in spec.split("x"))
            app_name = f"{SERVER_APP}_{workers}x{pool}"
            process, host, port = servers[spec] = start_server(url, workers, pool, app_name)
            name = (f"web GET /api/search?similar= ({workers} worker{'s' * (workers > 1)}, "
                    f"{pool} connections{' each' * (workers > 1)})")
            phases[name] = web_caller(host, port, files, args.k)
            meters[name] = {
                "server": CpuMeter(lambda p=process.pid: process_tree(p)),
                "postgres": CpuMeter(lambda a=app_name: backend_pids(monitor, a))}
        direct_pg = {"postgres": CpuMeter(lambda: backend_pids(monitor, DIRECT_APP))}
        phases["direct search_by_image"] = sql_caller(
            url, "image", lambda rng: rng.choice(files), args.k)
        meters["direct search_by_image"] = direct_pg
        phases["direct search_by_vector"] = sql_caller(
            url, "vector", lambda rng: queries[rng.randrange(len(queries))], args.k)
        meters["direct search_by_vector"] = direct_pg
        results: dict[tuple[str, int], dict] = {}
        loads: list[float] = []
        # warm-up: caches, prepared statements, the servers' pools grown to their size
        for name, make in phases.items():
            run_phase(make, args.clients, 3.0, {})
        for round_ in range(args.rounds):
            for clients, seconds in ((args.clients, args.seconds), (1, args.single_seconds)):
                for name, make in phases.items():
                    loads.append(os.getloadavg()[0])
                    print(f"round {round_ + 1}/{args.rounds}: {name}, {clients} client(s)"
                          f" (load average {loads[-1]:.2f})", file=sys.stderr)
                    got = run_phase(make, clients, seconds / args.rounds, meters[name])
                    total = results.setdefault((name, clients), {
                        "requests": 0, "seconds": 0.0, "samples": [], "errors": 0,
                        "cpu_s": {}})
                    for key in ("requests", "seconds", "errors"):
                        total[key] += got[key]
                    total["samples"] += got["samples"]
                    for party, value in got["cpu_s"].items():
                        total["cpu_s"][party] = total["cpu_s"].get(party, 0.0) + value
    finally:
        for process, _, _ in servers.values():
            process.send_signal(signal.SIGINT)
        for process, _, _ in servers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        monitor.close()

    rows = []
    for (name, clients), r in results.items():
        cpu = {f"{party}_cpu_ms": round(1000 * seconds / r["requests"], 3)
               for party, seconds in r["cpu_s"].items()}
        rows.append({"phase": name, "clients": clients, "requests": r["requests"],
                     "req/s": round(r["requests"] / r["seconds"], 1),
                     **{k: round(v, 2) for k, v in percentiles(r["samples"]).items()},
                     "p99_ms": round(float(np.percentile(r["samples"], 99)) * 1000, 2),
                     "errors": r["errors"], "server_cpu_ms": cpu.get("server_cpu_ms"),
                     "postgres_cpu_ms": cpu.get("postgres_cpu_ms"),
                     "client_cpu_ms": cpu.get("client_cpu_ms")})

    def ratio(metric, web_phase, clients, base):
        web = next(x for x in rows if x["phase"] == web_phase and x["clients"] == clients)
        other = next(x for x in rows if x["phase"] == base and x["clients"] == clients)
        return round(web[metric] / other[metric], 3)

    ratios = {}
    for web_phase in (name for name in phases if name.startswith("web")):
        label = web_phase.split("similar=")[1].strip()
        for clients in (args.clients, 1):
            for base in ("direct search_by_image", "direct search_by_vector"):
                key = (f"{clients} client(s), web{(' ' + label) if label else ''}"
                       f" / {base.split()[1]}")
                ratios[key] = {"p50": ratio("p50_ms", web_phase, clients, base),
                               "p95": ratio("p95_ms", web_phase, clients, base),
                               "mean": ratio("mean_ms", web_phase, clients, base),
                               "throughput": ratio("req/s", web_phase, clients, base)}
    print_table(f"pgallery serve under load: bench_{args.size}, k = {args.k}", rows)
    for key, value in ratios.items():
        print(f"{key}: p50 x{value['p50']}, p95 x{value['p95']}, mean x{value['mean']}, "
              f"throughput x{value['throughput']}")
    load = os.getloadavg()
    print(f"1-minute load average at the phases' starts: {min(loads):.2f} to "
          f"{max(loads):.2f}; after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    web_rows = [r for r in rows if r["phase"].startswith("web")]
    return {"distribution": "datagen", "phases": rows, "ratios": ratios,
            "loadavg_at_phase_starts": [round(x, 2) for x in loads],
            "loadavg_after": list(load), "errors_total": sum(r["errors"] for r in rows),
            "web_failed_share": (sum(r["errors"] for r in web_rows)
                                 / max(1, sum(r["requests"] for r in web_rows)))}

