"""The map in the browser's place: /explore's first screen and GET /api/map pan/zoom latency on a warm server.

    python bench/run.py map_viewport                       # 100k paintings
    python bench/run.py map_viewport --size 20000 --set requests=300

The collection is datagen's (bench/lib/datagen.py, with its metadata), laid out by the
neighbours method (``layout``: or pca; the positions are cached under bench/.work/data/,
and map_layout's run at the same size writes the neighbours ones), in a database of its own (bench_map_<size>: paintings, one
model, painting_map; no vectors, which map_points never reads). The server is the real
`pgallery serve` (a subprocess, 1 worker, its default pool), warmed with 50 requests.

- first screen: GET /explore, then GET /api/map of the whole map with the page's limit
  (400), one after the other on a new connection, as a browser's first visit does (the
  thumbnails follow only once a view holds fewer than 160 paintings).
- pan and zoom: a random walk of ``requests`` views as a visitor makes them, each
  centred on a random painting at a zoom of 1x to 256x (a view of 1/zoom of the map's
  side), each one GET /api/map on a keep-alive connection; with no filter, with a 5%
  filter (school=dutch; also at limit 200, what /explore asks for with a filter) and a
  0.1% one (author=gogh).
- the same views' map_points() called directly in SQL, for the server's share.

Figures: p5/p50/p95/p99/max in ms, the share of requests over 100 ms ("failed" the
budget), points returned per view.
"""

from __future__ import annotations

import time

import numpy as np
import psycopg
import requests

from common import WORK, connect, fresh_database, database_exists, print_table

DEFAULTS = {"size": 100000, "requests": 600, "limit": 400, "rebuild": False,
            "layout": "neighbours"}
QUICK = {"requests": 150}
LIBRARIES = ("requests",)
# label -> (filters, limit): /explore asks for 200 points when a filter is set
FILTERS = {"none": ({}, None), "school 5%": ({"school": "dutch"}, None),
           "school 5%, limit 200": ({"school": "dutch"}, 200),
           "author 0.1%": ({"author": "gogh"}, None)}


def result_name(params) -> str:
    suffix = "" if params.layout == "neighbours" else f"_{params.layout}"
    return f"map_viewport_{params.size}{suffix}"


def positions(n: int, log, method: str = "neighbours") -> np.ndarray:
    suffix = "" if method == "neighbours" else f"-{method}"
    path = WORK / "data" / f"map-positions-datagen-{n}{suffix}.npy"
    if path.is_file():
        return np.load(path)
    import datagen
    from pgallery.map import layout

    log(f"laying out datagen {n:,} ({method}, cached in {path}) ...")
    P = layout.layout(np.asarray(datagen.dataset(n).vectors), method)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, P)
    return P


def build(n: int, rebuild: bool, log, method: str) -> str:
    import datagen

    name = f"bench_map_{n}" + ("" if method == "neighbours" else f"_{method}")
    if database_exists(name) and not rebuild:
        from common import server_url

        return server_url(name)
    url = fresh_database(name)
    ds = datagen.dataset(n)
    P = positions(n, log, method)
    ranks = np.random.default_rng(0).permutation(n)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO embedding_model (name, dimension, provider, is_active)"
                     " VALUES ('bench/map', 1024, 'bench', true)")
        with conn.cursor().copy("COPY painting (image_file, title, author, school, date)"
                                " FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((ds.image_file(i), f"Painting {i}", ds.value("author", i),
                                ds.value("school", i), str(int(ds.years[i]))))
        ids = [r[0] for r in conn.execute("SELECT painting_id FROM painting"
                                          " ORDER BY painting_id")]
        with conn.cursor().copy("COPY painting_map (model, painting_id, x, y, sample_rank,"
                                " placed_by) FROM STDIN") as copy:
            for i, pid in enumerate(ids):
                copy.write_row(("bench/map", pid, float(P[i, 0]), float(P[i, 1]),
                                int(ranks[i]), "layout"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE painting")
        conn.execute("VACUUM ANALYZE painting_map")
    return url


def views(P: np.ndarray, count: int, seed: int = 0) -> list[tuple[float, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        zoom = 2.0 ** rng.uniform(0, 8)
        cx, cy = P[rng.integers(len(P))]
        half = 0.5 / zoom
        out.append((cx - half, cy - half * 0.6, cx + half, cy + half * 0.6))   # 16:10-ish
    return out


def tails(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {"p5_ms": round(float(np.percentile(ms, 5)), 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "max_ms": round(float(ms.max()), 1),
            "over_100ms": round(float((ms > 100).mean()), 3)}


def run(ctx) -> dict:
    from benchmarks.web import start_server
    from pgallery.map.viewport import STATEMENT, Viewport, arguments
    from pgallery.vocabulary import SearchFilters

    p = ctx.params
    url = build(p.size, p.rebuild, ctx.log, p.layout)
    P = positions(p.size, ctx.log, p.layout)
    walk = views(P, p.requests)
    process, host, port = start_server(url, 1, 8, "bench-map")
    base = f"http://{host}:{port}"
    out: dict = {"rows": p.size, "limit": p.limit, "layout": p.layout}
    try:
        session = requests.Session()
        for v in walk[:50]:                                    # warm the server
            session.get(base + "/api/map", params={"bbox": ",".join(map(str, v)),
                                                   "limit": p.limit}, timeout=30)
        first = []
        for _ in range(20):
            fresh = requests.Session()
            started = time.perf_counter()
            page = fresh.get(base + "/explore", timeout=30)
            data = fresh.get(base + "/api/map", params={"bbox": "0,0,1,1", "limit": p.limit},
                             timeout=30)
            first.append(time.perf_counter() - started)
            assert page.status_code == 200 and data.status_code == 200, data.text
            fresh.close()
        out["first_screen"] = {**tails(first), "points": len(data.json()["points"])}
        rows = []
        for label, (filters, limit) in FILTERS.items():
            samples, counts, errors = [], [], 0
            for v in walk:
                started = time.perf_counter()
                answer = session.get(base + "/api/map", params={
                    "bbox": ",".join(f"{c:.6f}" for c in v), "limit": limit or p.limit,
                    **filters}, timeout=30)
                samples.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    errors += 1
                else:
                    counts.append(len(answer.json()["points"]))
            rows.append({"via": "http", "filter": label, **tails(samples),
                         "errors": errors, "points_mean": round(float(np.mean(counts)), 1),
                         "points_max": int(np.max(counts))})
        with connect(url, autocommit=True) as conn:
            conn.execute("SET ROLE pgallery_reader")
            for label, (filters, limit) in FILTERS.items():
                f = SearchFilters(**filters)
                samples = []
                for v in walk:
                    started = time.perf_counter()
                    conn.execute(STATEMENT, arguments(Viewport(*v), limit or p.limit, f,
                                                      None)).fetchall()
                    samples.append(time.perf_counter() - started)
                rows.append({"via": "sql", "filter": label, **tails(samples)})
        out["pan_zoom"] = rows
    finally:
        process.terminate()
        process.wait(timeout=30)
    print_table("first screen (GET /explore + GET /api/map)", [out["first_screen"]])
    print_table(f"pan and zoom at {p.size:,} paintings, limit {p.limit}", out["pan_zoom"])
    return out
