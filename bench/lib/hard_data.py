"""More kinds of data for the recall benchmarks (issue 15): the defaults were tuned on
datagen.py's mixture only, so every recall figure is also measured on these.

``clustered``: strongly clustered, anisotropic unit vectors, the shape of the collection
the issue found zero-recall queries on. 64 Gaussian clusters with power-law sizes (cluster
i gets a share proportional to 1/i: at 20k the largest holds 4,200 vectors, the smallest
66), each spread in a 16-d subspace of its own with a power-law spectrum (so every
cluster is elongated in different directions) and a scale that itself varies 3x between
clusters, plus weak isotropic noise; a shared direction gives the mutual cosine of
image embeddings (~0.3). Queries are stored vectors plus small isotropic noise (the issue's
recipe: a user searching with an image that is nearly one of theirs). The rows are
stored in random order unless ``order="cluster"`` (a bulk load sorted by cluster, one of
the hypotheses measured by recall_bench.py).

``real``: the 634 images of ../shared/data/real-gallery and four transformed copies of
each (resize 50 %, 90 % centre crop, JPEG q50, brightness + hue shift: bench/lib/transforms.py
TRANSFORMS), 3,170 vectors embedded with pgallery's ``local`` provider. Queries are stored
vectors, each leaving itself out (what the tuner does), plus the 106 detail crops.

Both are deterministic and cached under bench/.work/data/.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from common import REAL_GALLERY, WORK

DIM = 1024
GALLERY = REAL_GALLERY


@dataclass
class Collection:
    """Vectors to store, queries to ask, and which stored row (if any) each query leaves out."""
    name: str
    vectors: np.ndarray            # (n, DIM) float32, unit norm
    queries: np.ndarray            # (q, DIM) float32, unit norm
    exclude: np.ndarray            # (q,) int64 row index left out of the answer, or -1
    labels: np.ndarray | None      # (n,) cluster / source image of each row, when known
    query_labels: np.ndarray | None
    facts: dict


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


CLUSTERS, RANK = 64, 16


def clustered(n: int = 20_000, queries: int = 200, seed: int = 7, order: str = "random",
              noise: float = 0.02) -> Collection:
    """64 anisotropic Gaussian clusters with power-law sizes (see the module docstring)."""
    path = WORK / "data" / f"clustered-{n}-{seed}-{order}-{queries}-{noise}.npz"
    if not path.is_file():
        rng = np.random.default_rng(seed)
        shared = _unit(rng.standard_normal(DIM))
        centers = _unit(rng.standard_normal((CLUSTERS, DIM)))
        share = 1.0 / np.arange(1, CLUSTERS + 1)
        counts = np.floor(share / share.sum() * n).astype(int)
        counts[0] += n - counts.sum()
        scale = np.exp(rng.uniform(np.log(0.25), np.log(0.75), CLUSTERS))
        spectrum = np.arange(1, RANK + 1) ** -0.75
        spectrum /= np.sqrt((spectrum ** 2).sum())
        parts, labels = [], []
        for c in range(CLUSTERS):
            basis = np.linalg.qr(rng.standard_normal((DIM, RANK)))[0].T       # (RANK, DIM)
            low = (rng.standard_normal((counts[c], RANK)) * spectrum * scale[c]) @ basis
            iso = rng.standard_normal((counts[c], DIM)) * (0.08 / np.sqrt(DIM))
            parts.append(0.6 * shared + centers[c] + low + iso)
            labels.append(np.full(counts[c], c))
        X = _unit(np.concatenate(parts))
        lab = np.concatenate(labels)
        if order == "random":
            perm = rng.permutation(n)
            X, lab = X[perm], lab[perm]
        elif order != "cluster":
            raise ValueError(order)
        src = rng.choice(n, queries, replace=False)
        Q = _unit(X[src] + rng.standard_normal((queries, DIM)) * (noise / np.sqrt(DIM)))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=X, lab=lab, Q=Q, src=src)
    d = np.load(path)
    return Collection(f"clustered-{order}", d["X"], d["Q"], np.full(len(d["Q"]), -1),
                      d["lab"], d["lab"][d["src"]],
                      {"clusters": CLUSTERS, "rank": RANK, "order": order, "noise": noise,
                       "seed": seed})


def real(queries: int = 300, seed: int = 3) -> Collection:
    """The real gallery and its transformed copies, embedded with `local` (cached)."""
    import csv

    path = WORK / "data" / "real-gallery-local.npz"
    if not path.is_file():
        from PIL import Image

        from transforms import TRANSFORMS
        from pgallery.providers.local import LocalDescriptorProvider

        provider = LocalDescriptorProvider()
        with open(GALLERY / "gallery.csv", newline="", encoding="utf-8") as fh:
            files = [r["IMAGE_FILE"] for r in csv.DictReader(fh, delimiter="\t")]
        vectors, labels, kinds = [], [], []
        for i, f in enumerate(files):
            data = (GALLERY / "images" / f).read_bytes()
            vectors.append(provider.embed_bytes(data, f))
            labels.append(i)
            kinds.append("original")
            image = Image.open(io.BytesIO(data)).convert("RGB")
            for name, fn in TRANSFORMS.items():
                vectors.append(provider.embed_bytes(fn(image), f"{f}:{name}"))
                labels.append(i)
                kinds.append(name)
        with open(GALLERY / "near_duplicates.csv", newline="") as fh:
            crops = list(csv.DictReader(fh))
        crop_vectors = [provider.embed_image(GALLERY / "queries" / c["query_file"])
                        for c in crops]
        crop_labels = [files.index(c["source_image_file"]) for c in crops]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=np.stack(vectors), lab=np.array(labels), kinds=np.array(kinds),
                 C=np.stack(crop_vectors), clab=np.array(crop_labels))
    d = np.load(path)
    X = _unit(d["X"])
    rng = np.random.default_rng(seed)
    src = rng.choice(len(X), min(queries, len(X)), replace=False)
    Q = np.concatenate([X[src], _unit(d["C"])])
    exclude = np.concatenate([src, np.full(len(d["C"]), -1)])
    return Collection("real", X, Q, exclude, d["lab"],
                      np.concatenate([d["lab"][src], d["clab"]]),
                      {"images": int(d["lab"].max()) + 1, "copies": len(X),
                       "leave_one_out_queries": len(src), "crop_queries": len(d["C"])})


def bench_mixture(n: int = 20_000, queries: int = 200) -> Collection:
    """datagen.py's mixture (what the defaults were tuned on), for the same tables."""
    import datagen

    ds = datagen.dataset(n)
    return Collection("datagen", np.asarray(ds.vectors), datagen.queries(queries),
                      np.full(queries, -1), None, None, {"clusters": datagen.CLUSTERS})


def load(name: str, n: int, queries: int = 200) -> Collection:
    """A collection by name; "clustered@8" / "clustered-sorted@8": another seed's clusters."""
    name, _, seed = name.partition("@")
    if seed:
        order = {"clustered": "random", "clustered-sorted": "cluster"}[name]
        c = clustered(n, queries, seed=int(seed), order=order)
        c.name += f"@{seed}"
        return c
    if name == "datagen":
        return bench_mixture(n, queries)
    if name == "clustered":
        return clustered(n, queries)
    if name == "clustered-sorted":
        return clustered(n, queries, order="cluster")
    if name == "real":
        return real()
    raise ValueError(name)


def exact_top_k(X: np.ndarray, Q: np.ndarray, exclude: np.ndarray, k: int = 10,
                block: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    """Row indexes and cosine distances of the k nearest (ties by row), leaving out exclude."""
    best_d = np.full((len(Q), 0), np.inf)
    best_i = np.full((len(Q), 0), -1, dtype=np.int64)
    for start in range(0, len(X), block):
        d = 1.0 - (Q @ X[start:start + block].T).astype(np.float64)
        rows = np.flatnonzero((exclude >= start) & (exclude < start + len(d[0])))
        d[rows, exclude[rows] - start] = np.inf
        idx = np.arange(start, start + d.shape[1])
        take = min(k, d.shape[1])
        part = np.argpartition(d, take - 1, axis=1)[:, :take]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, idx[part]], axis=1)
        o = np.lexsort((cand_i, cand_d), axis=1)[:, :k]
        best_d, best_i = np.take_along_axis(cand_d, o, 1), np.take_along_axis(cand_i, o, 1)
    return best_i, best_d


def describe(c: Collection, truth_d: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    s = c.vectors[rng.choice(len(c.vectors), min(2000, len(c.vectors)), replace=False)]
    sims = s @ s.T
    off = sims[~np.eye(len(s), dtype=bool)]
    return {"rows": len(c.vectors), "queries": len(c.queries), **c.facts,
            "mean_pairwise_cosine": float(off.mean()),
            "median_nn1_distance": float(np.median(truth_d[:, 0])),
            "median_nn10_distance": float(np.median(truth_d[:, -1]))}
