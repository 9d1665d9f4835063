"""The in-process ceiling: FAISS IndexHNSWFlat and hnswlib at pgvector's M=16,
ef_construction=64, and FAISS flat for exact search, on the same data and queries.

    python bench/ann_libs_bench.py --size 100000

One query at a time on one thread (as a search request arrives), latency from Python.
pgallery's figures come from the search benchmark of the same size (run it first); the
ratio is taken at equal recall, interpolating pgallery's recall-latency curve.
Writes bench/results/ann_libs_<n>.json and ann_libs_<n>.png.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import datagen
from common import RESULTS, median, percentiles, print_table, recall_at_k, stopwatch, write_result

M, EF_CONSTRUCTION = 16, 64


def timed_queries(search, qs, runs: int):
    """search(q) -> ids; per-run p50/p95 of single-query latency, and the ids of one run."""
    search(qs[0])
    stats, got = [], None
    for _ in range(runs):
        times, ids = [], []
        for q in qs:
            with stopwatch() as t:
                r = search(q)
            times.append(t())
            ids.append(list(r))
        stats.append(percentiles(times))
        got = ids
    return {"p50_ms": median([s["p50_ms"] for s in stats]),
            "p95_ms": median([s["p95_ms"] for s in stats])}, got


def pgallery_curve(n: int, method: str = "search_by_vector"):
    path = RESULTS / f"search_{n}.json"
    if not path.is_file():
        return None
    sweep = json.loads(path.read_text())["sweep"]
    pts = sorted((r["recall@10"], r["p50_ms"], r["ef_search"]) for r in sweep
                 if r["method"] == method)
    return pts


def latency_at(curve, recall: float):
    """pgallery's p50 at a given recall (linear interpolation; None outside its range)."""
    if not curve:
        return None
    xs = [c[0] for c in curve]
    ys = [c[1] for c in curve]
    if recall < xs[0] or recall > xs[-1]:
        return None
    return float(np.interp(recall, xs, ys))


def main(argv=None) -> dict:
    import faiss
    import hnswlib

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef", default="10,20,40,60,100,150,200,400")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    faiss.omp_set_num_threads(1)
    ds = datagen.dataset(a.size)
    X = np.ascontiguousarray(ds.vectors, dtype=np.float32)  # unit norm: IP == cosine order
    qs = datagen.queries(a.queries)
    truth = [list(r) for r in datagen.exact_top_k(X, qs, 10)]
    builds = {}

    faiss.omp_set_num_threads(2)
    with stopwatch() as t:
        fh = faiss.IndexHNSWFlat(X.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        fh.hnsw.efConstruction = EF_CONSTRUCTION
        fh.add(X)
    builds["faiss_hnsw"] = t()
    with stopwatch() as t:
        hl = hnswlib.Index(space="cosine", dim=X.shape[1])
        hl.init_index(max_elements=len(X), M=M, ef_construction=EF_CONSTRUCTION)
        hl.add_items(X, num_threads=2)
    builds["hnswlib"] = t()
    flat = faiss.IndexFlatIP(X.shape[1])
    flat.add(X)
    faiss.omp_set_num_threads(1)
    print(f"  built: FAISS HNSW {builds['faiss_hnsw']:.1f}s, hnswlib {builds['hnswlib']:.1f}s "
          "(2 threads)", flush=True)

    curve = pgallery_curve(a.size)
    rows = []
    for ef in [int(x) for x in a.ef.split(",")]:
        fh.hnsw.efSearch = ef
        hl.set_ef(max(ef, 10))
        for name, fn in (
            ("faiss IndexHNSWFlat", lambda q: fh.search(q[None, :], 10)[1][0]),
            ("hnswlib", lambda q: hl.knn_query(q[None, :], 10, num_threads=1)[0][0]),
        ):
            stats, got = timed_queries(fn, qs, a.runs)
            rec = float(np.mean([recall_at_k(g, t) for g, t in zip(got, truth)]))
            pg = latency_at(curve, rec)
            rows.append({"library": name, "ef_search": ef, "recall@10": rec, **stats,
                         "pgallery_p50_at_recall_ms": pg,
                         "pgallery_ratio": (pg / stats["p50_ms"]) if pg else None})
    stats, got = timed_queries(lambda q: flat.search(q[None, :], 10)[1][0], qs[:50], a.runs)
    rows.append({"library": "faiss IndexFlatIP (exact)", "ef_search": None,
                 "recall@10": float(np.mean([recall_at_k(g, t) for g, t in
                                             zip(got, truth[:50])])), **stats})
    print_table(f"in-process ANN libraries, {a.size:,} x 1024-d, 1 thread per query", rows,
                ["library", "ef_search", "recall@10", "p50_ms", "p95_ms",
                 "pgallery_p50_at_recall_ms", "pgallery_ratio"])
    if curve:
        print("\npgallery search_by_vector (from search_%d.json): " % a.size
              + ", ".join(f"ef {e}: {r:.3f} @ {l:.2f} ms" for r, l, e in curve))
    payload = {"size": a.size, "queries": a.queries, "M": M,
               "ef_construction": EF_CONSTRUCTION, "build_s": builds, "rows": rows,
               "pgallery_curve": curve}
    write_result(f"ann_libs_{a.size}", payload)
    plot(rows, curve, RESULTS / f"ann_libs_{a.size}.png", a.size)
    return payload


def plot(rows, curve, path, n):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=80)
    for lib in ("faiss IndexHNSWFlat", "hnswlib"):
        pts = [r for r in rows if r["library"] == lib]
        ax.plot([r["recall@10"] for r in pts], [r["p50_ms"] for r in pts], "o-", ms=3, label=lib)
    if curve:
        ax.plot([c[0] for c in curve], [c[1] for c in curve], "s-", ms=3,
                label="pgallery search_by_vector")
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("p50 latency per query (ms)")
    ax.set_title(f"pgallery vs in-process HNSW, {n:,} rows")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
