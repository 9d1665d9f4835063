"""search_by_colour at scale: latency tails, and how often the index path gives the exact top 10.

    python bench/run.py colour --size 100000

On colour_<size>, a database of its own: <size> paintings with synthetic palettes (not
pixels: 1 to 5 colours drawn from a mixture of painting-like tones, browns, ochres, dark
greens, skies and flesh, 70%, and uniform sRGB, 30%; shares from a Dirichlet), written as
the loader writes them (each histogram computed in Python and sent; the time is
reported), the HNSW index on the histograms built afterwards (its time too). ``queries`` queries of 1, 2 and 3 colours (weights
random for the 3-colour ones) are answered by search_by_colour(k => 10) with exact =>
true once (every palette scored: the reference), then through the index with 400 and 800
candidates (SET pgallery.colour_candidates) and with a painting_type filter that keeps 10%
of the paintings, ``rounds`` times each, interleaved. Recall is the share of the exact top
10 that a path returns (its tail: p5 and the share of queries under 0.5); ``candidates``
is the same for other candidate counts, from the index order itself.
"""

from __future__ import annotations

import time

import numpy as np

from common import fresh_database, database_exists, percentiles, print_table, recall_tails
from common import connect, server_url

DEFAULTS = {"size": 100_000, "queries": 60, "rounds": 2, "rebuild": False}
QUICK = {"queries": 20, "rounds": 1}
TYPES = ("portrait", "landscape", "religious", "genre", "still-life", "mythological",
         "interior", "historical", "study", "other")          # 10% each
TONES = np.array([(100, 65, 40), (200, 130, 40), (40, 60, 35), (120, 175, 225),
                  (225, 180, 150), (30, 28, 25), (235, 225, 200), (150, 40, 35)], float)


def palettes(n: int, rng: np.random.Generator):
    """n synthetic palettes: (lab list n_i x 3, shares n_i) each."""
    from pgallery.palette import srgb_to_lab

    out = []
    for _ in range(n):
        count = int(rng.integers(1, 6))
        tone = rng.random(count) < 0.7
        rgb = np.where(tone[:, None], TONES[rng.integers(0, len(TONES), count)]
                       + rng.normal(0, 18, (count, 3)), rng.uniform(0, 255, (count, 3)))
        lab = srgb_to_lab(np.clip(rgb, 0, 255))
        shares = np.sort(rng.dirichlet(np.full(count, 1.5)))[::-1]
        out.append((lab.round(3).tolist(), shares.round(5).tolist()))
    return out


def vector_text(v) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def build(size: int, log) -> tuple[str, dict]:
    from pgallery.palette import histogram

    url = fresh_database(f"colour_{size}")
    rng = np.random.default_rng(23)
    facts = {}
    with connect(url, autocommit=True) as conn:
        # searches check the request's model like every search (a collection has one)
        conn.execute("SELECT register_model('bench/colour', 1024, 'none')")
        with conn.cursor() as cur:
            with cur.copy("COPY painting (image_file, title, painting_type) FROM STDIN") as copy:
                for i in range(size):
                    copy.write_row((f"c{i:07d}.jpg", f"Painting {i}", TYPES[i % len(TYPES)]))
        ids = [r[0] for r in conn.execute("SELECT painting_id FROM painting ORDER BY 1")]
        # the HNSW index is built after the load (as bench_<n>'s is): inserting 100k rows
        # one by one into the graph took most of an hour on the loaded machine
        conn.execute("DROP INDEX painting_palette_histogram")
        start = time.perf_counter()
        batch = 5000
        made = palettes(size, rng)
        for lo in range(0, size, batch):
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO painting_palette (painting_id, lab, shares, histogram)"
                        " VALUES (%s, %s::real[], %s::real[], %s::vector)",
                        [(ids[i], *made[i], vector_text(histogram(*made[i])))
                         for i in range(lo, min(size, lo + batch))])
            log(f"  palettes {min(size, lo + batch):,}/{size:,}", flush=True)
        facts["write_s"] = time.perf_counter() - start
        facts["write_ms_per_palette"] = 1000 * facts["write_s"] / size
        start = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("CREATE INDEX painting_palette_histogram ON painting_palette"
                     " USING hnsw (histogram vector_cosine_ops)")
        facts["index_build_s"] = time.perf_counter() - start
        conn.execute("VACUUM ANALYZE painting")
        conn.execute("VACUUM ANALYZE painting_palette")
        facts["index_bytes"] = conn.execute(
            "SELECT pg_relation_size('painting_palette_histogram')").fetchone()[0]
    return url, facts


def queries(count: int, rng: np.random.Generator) -> list[list[str]]:
    out = []
    for i in range(count):
        n = (1, 2, 3)[i % 3]
        colours = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rng.integers(0, 256, (n, 3))]
        if n == 3:
            colours = [f"{c}:{w:.2f}" for c, w in zip(colours, rng.uniform(0.2, 1, 3))]
        out.append(colours)
    return out


SEARCH = "SELECT painting_id FROM search_by_colour(%s, k => 10{extra})"
# label -> (pgallery.colour_candidates, extra arguments)
PATHS = {"index, 400 candidates": (400, ""), "index, 800 candidates": (800, ""),
         "index, 800, type filter 10%": (800, ", painting_type => 'genre'")}


def timed(conn, statement: str, colours) -> tuple[list[int], float]:
    start = time.perf_counter()
    rows = [r[0] for r in conn.execute(statement, (colours,)).fetchall()]
    return rows, time.perf_counter() - start


def run(ctx) -> dict:
    a = ctx.params
    name = f"colour_{a.size}"
    if a.rebuild or not database_exists(name):
        url, built = build(a.size, ctx.log)
    else:
        url, built = server_url(name), {"write_s": "not measured (database reused)"}
    qs = queries(a.queries, np.random.default_rng(5))
    times = {label: [] for label in (*PATHS, "exact")}
    answers = {label: [] for label in (*PATHS, "exact", "exact, type filter 10%")}
    with connect(url, autocommit=True) as conn:
        def path(label, colours):
            candidates, extra = PATHS[label]
            conn.execute(f"SET pgallery.colour_candidates = {int(candidates)}")
            return timed(conn, SEARCH.format(extra=extra), colours)

        for colours in qs[:3]:                                  # warm: plans and caches
            for label in PATHS:
                path(label, colours)
        for i, colours in enumerate(qs):
            # the references, once each (exact scores every palette: seconds at 100k)
            rows, seconds = timed(conn, SEARCH.format(extra=", exact => true"), colours)
            answers["exact"].append(rows)
            times["exact"].append(seconds)
            answers["exact, type filter 10%"].append(timed(conn, SEARCH.format(
                extra=", painting_type => 'genre', exact => true"), colours)[0])
        for _ in range(a.rounds):
            for i, colours in enumerate(qs):
                for label in PATHS:                              # interleaved
                    rows, seconds = path(label, colours)
                    times[label].append(seconds)
                    if len(answers[label]) <= i:
                        answers[label].append(rows)
        # candidates: where the exact top 10 sit in the index's order
        conn.execute("SET hnsw.ef_search = 1000")
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        depth = {n: [] for n in (100, 200, 400, 800, 1600)}
        for colours, exact in zip(qs, answers["exact"]):
            order = [r[0] for r in conn.execute(
                "SELECT painting_id FROM painting_palette ORDER BY histogram <=>"
                " (SELECT palette_histogram(t.lab, t.weights) FROM colour_terms(%s) t)"
                " LIMIT 1600", (colours,))]
            for n in depth:
                depth[n].append(len(set(order[:n]) & set(exact)) / 10)
    rows, figures = [], {"built": built, "paths": {}, "candidates": {}}
    for label in times:
        reference = answers["exact, type filter 10%" if "filter" in label else "exact"]
        recall = [len(set(x) & set(e)) / 10 for x, e in zip(answers[label], reference)]
        row = {"path": label, **percentiles(times[label]), **recall_tails(recall)}
        rows.append(row)
        figures["paths"][label] = row
    for n, values in depth.items():
        figures["candidates"][n] = recall_tails(values)
    print_table(f"search_by_colour at {a.size:,} palettes ({len(qs)} queries x {a.rounds})",
                rows, ["path", "p5_ms", "p50_ms", "p95_ms", "mean_ms", "recall_mean",
                       "recall_p5", "lost_share"])
    print_table("exact top 10 among the index's first N candidates",
                [{"N": n, **figures["candidates"][n]} for n in depth],
                ["N", "recall_mean", "recall_p5", "lost_share"])
    return figures
