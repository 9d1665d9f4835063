"""2-D layouts of a collection's embeddings, in numpy alone.

Two methods (bench/README.md, "The map", chose between them and the libraries):

- ``pca``: the two main axes of the vectors. Fast, but keeps 2-3 of each painting's 10
  most similar among its 10 nearest on the map.
- ``neighbours`` (the default): a neighbour embedding in the manner of UMAP. Each
  painting's nearest neighbours (cosine, in the full space) are pulled
  towards it on the map with UMAP's attraction curve, random other paintings are pushed
  away, starting from the PCA layout; the whole graph moves at once each epoch (numpy
  vector operations, no per-edge loop), so it needs no compiler (numba) and no library.

:func:`layout` returns x, y scaled into [0, 1] (the aspect ratio kept, centred), what
``painting_map`` stores.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

METHODS = ("neighbours", "pca")
EXACT_GRAPH_ROWS = 5000  # above, the neighbour graph is found cell by cell (k-means)
GRAPH_K = 15           # neighbours per painting in the graph (UMAP's default)
NEGATIVES = 4          # random paintings pushed away per pulled pair and epoch
# UMAP's attraction curve 1 / (1 + a d^2b) for min_dist 0.1, spread 1.0
CURVE_A, CURVE_B = 1.577, 0.8951

Progress = Callable[[int, int], None]   # (done, total) steps


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    X = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return X / norms


def pca(X: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """X projected on its ``dims`` main axes, largest first: a randomised SVD (Halko et
    al.: a random projection to dims + 16 columns, two power iterations), a few passes
    over X instead of the d x d covariance's eigenvectors (0.1 s instead of 4 s at 1,000
    rows of 1024-d)."""
    centred = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
    dims = min(dims, centred.shape[1], max(1, len(centred) - 1))
    width = min(dims + 16, *centred.shape)
    rng = np.random.default_rng(seed)
    Q = centred @ rng.standard_normal((centred.shape[1], width)).astype(np.float32)
    for _ in range(2):
        Q = np.linalg.qr(Q)[0]
        Q = centred @ (centred.T @ Q)
    Q = np.linalg.qr(Q)[0]
    _, _, vt = np.linalg.svd(Q.T @ centred, full_matrices=False)
    return centred @ vt[:dims].T


def nearest_neighbours(Y: np.ndarray, k: int, block: int = 512,
                       progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows (euclidean): indexes and distances, nearest first.
    Brute force in blocks of rows (the block's distance matrix is block x n floats)."""
    n = len(Y)
    k = min(k, n - 1)
    sq = np.einsum("ij,ij->i", Y, Y)
    idx = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (Y[start:stop] @ Y.T)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(pd, axis=1)
        idx[start:stop] = np.take_along_axis(part, order, axis=1)
        dist[start:stop] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0))
        if progress:
            progress(stop, n)
    return idx, dist


def clustered_neighbours(Y: np.ndarray, k: int, probes: int = 8, seed: int = 0,
                         progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximately each row's k nearest other rows, for large collections: k-means into
    about 2 sqrt(n) cells, then every cell's rows against the rows of its ``probes``
    nearest cells (its own first), exactly. The work grows with n^1.5 instead of n^2."""
    n = len(Y)
    k = min(k, n - 1)
    cells = max(2, int(2 * np.sqrt(n)))
    rng = np.random.default_rng(seed)
    centres = Y[rng.choice(n, cells, replace=False)].copy()
    sample = Y[rng.choice(n, min(n, cells * 40), replace=False)]
    for _ in range(8):                      # k-means on a sample
        assign = _nearest_centre(sample, centres)
        for axis in range(Y.shape[1]):
            total = np.bincount(assign, weights=sample[:, axis], minlength=cells)
            count = np.bincount(assign, minlength=cells)
            centres[:, axis] = np.where(count > 0, total / np.maximum(count, 1),
                                        centres[:, axis])
    assign = _nearest_centre(Y, centres)
    members = [np.flatnonzero(assign == c) for c in range(cells)]
    near_cells = np.argsort(_sq_distances(centres, centres), axis=1)[:, :probes]
    sq = np.einsum("ij,ij->i", Y, Y)
    idx = np.zeros((n, k), dtype=np.int64)
    dist = np.full((n, k), np.inf, dtype=np.float32)
    for c in range(cells):
        rows = members[c]
        if not len(rows):
            continue
        cand = np.concatenate([members[o] for o in near_cells[c]])
        d2 = sq[rows, None] + sq[None, cand] - 2.0 * (Y[rows] @ Y[cand].T)
        d2[rows[:, None] == cand[None, :]] = np.inf
        take = min(k, len(cand) - 1)
        part = np.argpartition(d2, take - 1, axis=1)[:, :take]
        pd = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(pd, axis=1)
        idx[rows, :take] = cand[np.take_along_axis(part, order, axis=1)]
        dist[rows, :take] = np.sqrt(np.maximum(np.take_along_axis(pd, order, axis=1), 0))
        if take < k:                     # a tiny neighbourhood: repeat the farthest
            idx[rows, take:] = idx[rows, take - 1:take]
            dist[rows, take:] = dist[rows, take - 1:take]
        if progress:
            progress(c + 1, cells)
    return idx, dist


def _sq_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return (np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :]
            - 2.0 * (A @ B.T))


def _nearest_centre(Y: np.ndarray, centres: np.ndarray, block: int = 4096) -> np.ndarray:
    return np.concatenate([np.argmin(_sq_distances(Y[s:s + block], centres), axis=1)
                           for s in range(0, len(Y), block)])


def fuzzy_graph(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """UMAP's graph: each painting's edge weights exp(-(d - rho) / sigma), sigma such that
    they sum to log2(k), then the union of both directions (a + b - ab). Edges (i, j, w)
    with i < j."""
    n, k = idx.shape
    rho = dist[:, 0:1]
    target = np.log2(k)
    lo, hi = np.zeros((n, 1)), np.full((n, 1), np.inf)
    sigma = np.ones((n, 1))
    excess = np.maximum(dist - rho, 0).astype(np.float64)
    for _ in range(48):                  # binary search, all rows at once
        total = np.exp(-excess / sigma).sum(axis=1, keepdims=True)
        high = total > target
        hi = np.where(high, sigma, hi)
        lo = np.where(high, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2, (lo + hi) / 2)
    w = np.exp(-excess / np.maximum(sigma, 1e-12))
    i = np.repeat(np.arange(n), k)
    j = idx.ravel()
    w = w.ravel()
    a, b = np.minimum(i, j), np.maximum(i, j)
    key = a * n + b
    order = np.argsort(key, kind="stable")
    key, w = key[order], w[order]
    first = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(first) - 1
    total = np.bincount(group, weights=w)
    product = np.exp(np.bincount(group, weights=np.log(np.maximum(w, 1e-300))))
    count = np.bincount(group)
    weight = np.where(count > 1, total - product, total)
    keys = key[first]
    return keys // n, keys % n, weight


def _clipped(g: np.ndarray) -> np.ndarray:
    return np.clip(g, -4.0, 4.0)


def optimise(Y: np.ndarray, heads: np.ndarray, tails: np.ndarray, weight: np.ndarray,
             epochs: int, seed: int = 0, progress: Progress | None = None) -> np.ndarray:
    """UMAP's objective by full-graph gradient steps: per epoch each edge is drawn with
    probability weight / max weight, pulls its ends together, and each drawn edge's head
    is pushed from NEGATIVES random paintings. Each painting's summed step is divided by
    its number of drawn edges, so a step never exceeds UMAP's own clip (4) times the rate,
    whatever a painting's degree."""
    rng = np.random.default_rng(seed)
    n = len(Y)
    Y = Y.astype(np.float64).copy()
    chance = weight / weight.max()
    a, b = CURVE_A, CURVE_B
    for epoch in range(epochs):
        rate = 1.0 - epoch / epochs
        drawn = rng.random(len(chance)) < chance
        h, t = heads[drawn], tails[drawn]
        diff = Y[h] - Y[t]
        d2 = np.einsum("ij,ij->i", diff, diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            pull = np.where(d2 > 0, -2 * a * b * d2 ** (b - 1) / (1 + a * d2 ** b), 0.0)
        g = _clipped(pull[:, None] * diff)
        step = np.zeros_like(Y)
        for axis in (0, 1):
            step[:, axis] += np.bincount(h, weights=g[:, axis], minlength=n)
            step[:, axis] -= np.bincount(t, weights=g[:, axis], minlength=n)
        # both ends repel NEGATIVES random paintings each
        ends = np.concatenate([h, t])
        src = np.repeat(ends, NEGATIVES)
        other = rng.integers(0, n, len(src))
        diff = Y[src] - Y[other]
        d2 = np.einsum("ij,ij->i", diff, diff)
        push = np.where(other == src, 0.0, 2 * b / ((0.001 + d2) * (1 + a * d2 ** b)))
        g = _clipped(push[:, None] * diff)
        for axis in (0, 1):
            step[:, axis] += np.bincount(src, weights=g[:, axis], minlength=n)
        degree = np.bincount(ends, minlength=n)
        Y += rate * step / np.maximum(degree, 1)[:, None]
        if progress:
            progress(epoch + 1, epochs)
    return Y


def epochs_for(n: int) -> int:
    """200 epochs (UMAP's for large collections): 500 gained 0.04 of 10 neighbours at
    1,000 paintings, for 2.5 times the time (bench/README.md, "The map")."""
    return 200


def to_unit_square(Y: np.ndarray) -> np.ndarray:
    """Scaled into [0, 1] x [0, 1], both axes by the same factor (shapes stay), centred,
    with a 2% margin so that no point sits on the edge."""
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = float((hi - lo).max()) or 1.0
    out = (Y - (lo + hi) / 2) / span * 0.96 + 0.5
    return np.clip(out, 0.0, 1.0)


def layout(vectors: np.ndarray, method: str = "neighbours", *, seed: int = 0,
           epochs: int | None = None, progress: Callable[[str, int, int], None] | None = None
           ) -> np.ndarray:
    """(n, 2) positions in [0, 1] for the (n, d) vectors. ``progress(stage, done, total)``
    is called through the stages (graph, layout)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    X = unit_rows(vectors)
    n = len(X)
    if n < 3:
        return np.full((n, 2), 0.5) if n else np.zeros((0, 2))
    start = pca(X, 2, seed=seed).astype(np.float64)
    if method == "pca":
        return to_unit_square(start)
    stage = (lambda name: (lambda d, t: progress(name, d, t))) if progress else \
        (lambda name: None)
    # the graph in the full space: a PCA to 48-256 dimensions first lost 15-40% of each
    # painting's true 15 nearest on clustered data (bench/README.md, "The map")
    find = nearest_neighbours if n <= EXACT_GRAPH_ROWS else clustered_neighbours
    idx, dist = find(X, GRAPH_K, progress=stage("graph"))
    heads, tails, weight = fuzzy_graph(idx, dist)
    # UMAP starts from coordinates spread over about +-10
    start = start / (np.abs(start).max() or 1.0) * 10
    Y2 = optimise(start, heads, tails, weight, epochs or epochs_for(n), seed=seed,
                  progress=stage("layout"))
    return to_unit_square(Y2)


def neighbourhood_preservation(vectors: np.ndarray, positions: np.ndarray, k: int = 10,
                               sample: int = 1000, seed: int = 0,
                               rows: np.ndarray | None = None) -> np.ndarray:
    """For a sample of rows (or the given ``rows``): how many of its k nearest on the map
    are among its k most similar by cosine in the embedding space (0..k each)."""
    X = unit_rows(vectors)
    n = len(X)
    k = min(k, n - 1)
    if rows is None:
        rows = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    found = np.empty(len(rows), dtype=np.int64)
    P = np.asarray(positions, dtype=np.float64)
    sq = np.einsum("ij,ij->i", P, P)
    for start in range(0, len(rows), 128):
        chunk = rows[start:start + 128]
        sims = X[chunk] @ X.T
        sims[np.arange(len(chunk)), chunk] = -np.inf
        truth = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        d2 = sq[chunk, None] + sq[None, :] - 2.0 * (P[chunk] @ P.T)
        d2[np.arange(len(chunk)), chunk] = np.inf
        near = np.argpartition(d2, k - 1, axis=1)[:, :k]
        for r in range(len(chunk)):
            found[start + r] = len(np.intersect1d(truth[r], near[r], assume_unique=True))
    return found
