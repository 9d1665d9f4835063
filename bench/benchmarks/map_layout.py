"""The map's layout: how many of each painting's 10 most similar stay among its 10 nearest on the map, per method, and at what cost.

    python bench/run.py map_layout --size 1000
    python bench/run.py map_layout --size 100000 --set methods=pca,neighbours,umap

For each distribution and method, the vectors are laid out in 2-D and, for a sample of
paintings (``sample``), the figure is how many of its 10 nearest on the map (euclidean)
are among its 10 most similar in the embedding space (cosine, exact): mean, p5, and the
share of paintings that keep none (the map's "failed queries"). Also the time, and what
the method needs installed.

Distributions: ``clustered`` (bench/lib/hard_data.py: 64 anisotropic clusters with
power-law sizes), ``datagen`` (the search benchmarks' mixture: 384 clusters in 24
groups), ``real`` (the 634 originals of the real gallery embedded with `local`; its size
is its own whatever --size says).

Methods: ``pca`` and ``neighbours`` (pgallery/map/layout.py, numpy only), ``umap``
(umap-learn: numba, pynndescent, scikit-learn, scipy) and ``tsne`` (scikit-learn's
Barnes-Hut t-SNE), each skipped with a note when not installed.

Placement (up to ``placement_max`` rows): the neighbours layout of 90% of the paintings,
then the other 10% placed as place_on_map() does (the mean of the positions of their
``placed_k`` most similar laid-out paintings): the figure for the placed ones beside the
laid-out ones'. t-SNE runs up to ``tsne_max`` rows (270 s at 1,000 on the shared cores).
"""

from __future__ import annotations

import time

import numpy as np

from common import WORK, print_table

DEFAULTS = {"size": 20000, "dists": "clustered,datagen,real",
            "methods": "pca,neighbours,umap,tsne", "sample": 1000, "tsne_max": 5000,
            "placed_k": "5,10", "placement_max": 20000}
QUICK = {"sample": 300, "methods": "pca,neighbours"}
LIBRARIES = ("numpy", "umap-learn", "scikit-learn", "numba")


def vectors(dist: str, n: int) -> np.ndarray:
    import hard_data

    if dist == "clustered":
        return hard_data.clustered(n, 10).vectors
    if dist == "datagen":
        import datagen

        return np.asarray(datagen.dataset(n).vectors, dtype=np.float32)
    if dist == "real":
        hard_data.real()
        data = np.load(WORK / "data" / "real-gallery-local.npz")
        return data["X"][data["kinds"] == "original"].astype(np.float32)
    raise SystemExit(f"unknown distribution {dist!r}")


def lay_out(method: str, X: np.ndarray) -> np.ndarray:
    from pgallery.map import layout

    if method in layout.METHODS:
        return layout.layout(X, method)
    if method == "umap":
        import umap

        return umap.UMAP(n_neighbors=15, metric="cosine", random_state=0).fit_transform(X)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(init="pca", metric="cosine", random_state=0).fit_transform(X)
    raise SystemExit(f"unknown method {method!r}")


def available(method: str) -> str | None:
    needs = {"umap": "umap", "tsne": "sklearn"}.get(method)
    if needs is None:
        return None
    try:
        __import__(needs)
    except ImportError:
        return f"{method}: {needs} is not installed"
    return None


def tails(kept: np.ndarray) -> dict:
    return {"mean": round(float(kept.mean()), 2), "p5": float(np.percentile(kept, 5)),
            "p50": float(np.percentile(kept, 50)),
            "none_kept": round(float((kept == 0).mean()), 3)}


def placement(X: np.ndarray, ks: list[int], sample: int) -> list[dict]:
    """Lay out 90%, place 10% beside their k most similar laid-out paintings."""
    from pgallery.map import layout

    n = len(X)
    rng = np.random.default_rng(1)
    order = rng.permutation(n)
    old, new = order[: int(n * 0.9)], order[int(n * 0.9):]
    U = layout.unit_rows(X)
    P_old = layout.layout(X[old])
    rows = []
    for k in ks:
        P = np.zeros((n, 2))
        P[old] = P_old
        for start in range(0, len(new), 512):
            chunk = new[start:start + 512]
            sims = U[chunk] @ U[old].T
            near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            P[chunk] = P_old[near].mean(axis=1)
        pick_new = new[: min(sample, len(new))]
        pick_old = old[: min(sample, len(old))]
        rows.append({"placed_k": k,
                     **{f"placed_{key}": v for key, v in tails(
                         layout.neighbourhood_preservation(X, P, rows=pick_new)).items()},
                     **{f"laid_out_{key}": v for key, v in tails(
                         layout.neighbourhood_preservation(X, P, rows=pick_old)).items()}})
    return rows


def run(ctx) -> dict:
    from pgallery.map import layout

    p = ctx.params
    out = {"layouts": [], "placement": [], "skipped": []}
    for dist in p.dists.split(","):
        X = vectors(dist, p.size)
        for method in p.methods.split(","):
            missing = available(method)
            if missing or (method == "tsne" and len(X) > p.tsne_max):
                out["skipped"].append(missing or f"tsne above {p.tsne_max:,} rows")
                continue
            ctx.log(f"{dist} {len(X):,}: {method} ...")
            started = time.perf_counter()
            P = lay_out(method, X)
            seconds = time.perf_counter() - started
            kept = layout.neighbourhood_preservation(X, P, sample=p.sample)
            if dist == "datagen" and method == "neighbours":     # map_viewport's map
                cache = WORK / "data" / f"map-positions-datagen-{len(X)}.npy"
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, P)
            row = {"dist": dist, "rows": len(X), "method": method,
                   "seconds": round(seconds, 1), **tails(kept)}
            out["layouts"].append(row)
            ctx.log(f"  {row}")
        if "neighbours" in p.methods.split(",") and len(X) <= p.placement_max:
            for row in placement(X, [int(k) for k in p.placed_k.split(",")], p.sample):
                out["placement"].append({"dist": dist, "rows": len(X), **row})
    print_table("neighbourhood preservation (of 10)", out["layouts"])
    print_table("new paintings placed beside their neighbours", out["placement"])
    return out
