"""Realistic synthetic embeddings and SemArt-like metadata for the benchmarks.

Vectors (1024-d, float32, unit norm) imitate what image-embedding models produce:

- a strong shared direction (every image embedding has one: cosine between unrelated
  paintings is ~0.3, never ~0),
- 24 coarse groups (genres/schools) split into 384 clusters of uneven size (Zipf-like),
- anisotropic spread: most of the variance in a 96-d subspace with a power-law spectrum,
  plus weak isotropic noise in all 1024 dimensions.

Metadata gives every filter kind one value at each of the selectivities 50%, 5%, 0.5% and
0.1% (the rest of the rows take filler values that never match those filters). The
painting type follows the visual cluster (a landscape looks like a landscape), so the
type filter is correlated with the vectors; the others are independent of them.

Everything is deterministic for a (size, seed) and cached under bench/.work/data/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import WORK

DIM = 1024
GROUPS, CLUSTERS, RANK = 24, 384, 96
SELECTIVITIES = (0.5, 0.05, 0.005, 0.001)

# kind -> (stored value, filter argument) at each selectivity in SELECTIVITIES, then fillers
VALUES = {
    "author": [("ANONYMOUS, Master", "anonymous"), ("RUBENS, Peter Paul", "rubens"),
               ("REMBRANDT Harmenszoon van Rijn", "rembrandt"), ("GOGH, Vincent van", "gogh")],
    "technique": [("Oil on canvas", "canvas"), ("Tempera on panel", "tempera"),
                  ("Fresco, detail", "fresco"), ("Pastel on paper", "pastel")],
    "school": [("Italian", "italian"), ("Dutch", "dutch"), ("Danish", "danish"),
               ("Hungarian", "hungarian")],
    "painting_type": [("religious", "religious"), ("landscape", "landscape"),
                      ("interior", "interior"), ("study", "study")],
    "timeframe": [("1601-1650", "1601-1650"), ("1851-1900", "1851-1900"),
                  ("1351-1400", "1351-1400"), ("1301-1350", "1301-1350")],
}
FILLERS = {
    "author": [f"PAINTER {i:04d}, Follower of" for i in range(3000)],
    "technique": ["Oil on wood", "Oil on copper", "Watercolour", "Etching", "Mosaic",
                  "Marble", "Bronze"],
    "school": ["French", "Flemish", "German", "Spanish", "English", "Austrian", "Swiss"],
    "painting_type": ["portrait", "mythological", "genre", "still-life", "historical", "other"],
    "timeframe": ["1401-1450", "1451-1500", "1501-1550", "1551-1600", "1651-1700",
                  "1701-1750", "1751-1800", "1801-1850"],
}
KINDS = ("author", "technique", "school", "painting_type", "timeframe", "years")


@dataclass
class Dataset:
    n: int
    seed: int
    vectors: np.ndarray          # (n, 1024) float32 unit norm (a read-only memmap)
    codes: dict[str, np.ndarray]  # kind -> int16 code per row: 0..3 designated, 4+ filler
    years: np.ndarray            # int16 year per row (inside its timeframe)

    def value(self, kind: str, i: int) -> str:
        code = int(self.codes[kind][i])
        table = [v for v, _ in VALUES[kind]] + FILLERS[kind]
        return table[code]

    def image_file(self, i: int) -> str:
        return f"bench-{i:07d}.jpg"

    def filters(self) -> list[dict]:
        """Every filter kind at every selectivity: its SQL arguments, target and mask."""
        out = []
        for kind in KINDS:
            for level, target in enumerate(SELECTIVITIES):
                if kind == "years":
                    lo, hi = (int(x) for x in VALUES["timeframe"][level][1].split("-"))
                    args = {"year_from": lo, "year_to": hi}
                    mask = (self.years >= lo) & (self.years <= hi)
                else:
                    args = {kind: VALUES[kind][level][1]}
                    mask = self.codes[kind] == level
                out.append({"kind": kind, "target": target, "args": args, "mask": mask,
                            "selectivity": float(mask.mean()), "matching": int(mask.sum())})
        return out


def _codes(rng, n: int, kind: str) -> np.ndarray:
    """Designated values at their exact shares, fillers for the rest, shuffled."""
    counts = [int(round(s * n)) for s in SELECTIVITIES]
    rest = n - sum(counts)
    fill = 4 + rng.integers(0, len(FILLERS[kind]), rest)
    codes = np.concatenate([np.full(c, level) for level, c in enumerate(counts)] + [fill])
    rng.shuffle(codes)
    return codes.astype(np.int16)


def _type_codes(rng, n: int, cluster: np.ndarray) -> np.ndarray:
    """Painting type follows the cluster: each cluster has a dominant type, drawn with the
    target shares; 70% of a cluster's rows take it. Shares are then exact via a fix-up."""
    weights = np.array(list(SELECTIVITIES) + [1 - sum(SELECTIVITIES)])
    dominant = rng.choice(5, CLUSTERS, p=weights)
    codes = np.where(rng.random(n) < 0.7, dominant[cluster], -1)
    # make each designated value's count exact: trim or top up at random
    out = np.full(n, -1, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    for level, share in enumerate(SELECTIVITIES):
        want = int(round(share * n))
        have = np.flatnonzero((codes == level) & ~taken)
        if len(have) >= want:
            pick = rng.choice(have, want, replace=False)
        else:
            free = np.flatnonzero((codes == -1) & ~taken)
            if len(free) < want - len(have):  # tiny n: borrow from the filler-dominant rows
                free = np.flatnonzero(~taken & ~np.isin(np.arange(n), have))
            pick = np.concatenate([have, rng.choice(free, want - len(have), replace=False)])
        out[pick] = level
        taken[pick] = True
    rest = np.flatnonzero(~taken)
    out[rest] = 4 + rng.integers(0, len(FILLERS["painting_type"]), len(rest))
    return out.astype(np.int16)


def _mixture(seed: int):
    """The generative model's fixed parts (same for every size of a seed)."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(DIM).astype(np.float32)
    shared /= np.linalg.norm(shared)
    groups = rng.standard_normal((GROUPS, DIM)).astype(np.float32) / np.sqrt(DIM)
    parent = rng.integers(0, GROUPS, CLUSTERS)
    centers = (groups[parent] * 1.0
               + rng.standard_normal((CLUSTERS, DIM)).astype(np.float32) / np.sqrt(DIM) * 0.8)
    sizes = 1.0 / np.arange(1, CLUSTERS + 1) ** 0.6        # uneven cluster sizes
    sizes = rng.permutation(sizes / sizes.sum())
    basis = np.linalg.qr(rng.standard_normal((DIM, RANK)))[0].T.astype(np.float32)  # (RANK, DIM)
    spectrum = (np.arange(1, RANK + 1) ** -0.5).astype(np.float32)
    spectrum *= 0.9 / np.sqrt((spectrum ** 2).sum())
    return shared, centers, sizes, basis, spectrum


def sample(seed: int, n: int, stream: int, chunk: int = 50_000):
    """n vectors from the mixture (and their clusters); ``stream`` separates data/queries."""
    shared, centers, sizes, basis, spectrum = _mixture(seed)
    rng = np.random.default_rng([seed, stream])
    cluster = rng.choice(CLUSTERS, n, p=sizes)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        c = cluster[start:start + chunk]
        m = len(c)
        low = (rng.standard_normal((m, RANK)).astype(np.float32) * spectrum) @ basis
        iso = rng.standard_normal((m, DIM)).astype(np.float32) * (0.35 / np.sqrt(DIM))
        v = 1.2 * shared + centers[c] + low + iso
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[start:start + m] = v
    return out, cluster


def dataset(n: int, seed: int = 42) -> Dataset:
    """The cached dataset of n rows (generated on first use)."""
    folder = WORK / "data"
    folder.mkdir(parents=True, exist_ok=True)
    vec_path = folder / f"vectors-{n}-{seed}.npy"
    meta_path = folder / f"meta-{n}-{seed}.npz"
    if not (vec_path.is_file() and meta_path.is_file()):
        vectors, cluster = sample(seed, n, stream=0)
        np.save(vec_path, vectors)
        rng = np.random.default_rng([seed, 7])
        codes = {kind: _codes(rng, n, kind) for kind in ("author", "technique", "school",
                                                           "timeframe")}
        codes["painting_type"] = _type_codes(rng, n, cluster)
        starts = np.array([int(v.split("-")[0]) for v, _ in VALUES["timeframe"]]
                          + [int(v.split("-")[0]) for v in FILLERS["timeframe"]])
        years = (starts[codes["timeframe"]] + rng.integers(0, 50, n)).astype(np.int16)
        np.savez(meta_path, years=years, **codes)
        del vectors
    meta = np.load(meta_path)
    codes = {k: meta[k] for k in VALUES}
    return Dataset(n, seed, np.load(vec_path, mmap_mode="r"), codes, meta["years"])


QUERY_POOL = 1000


def queries(count: int = 200, seed: int = 42) -> np.ndarray:
    """The first ``count`` of a fixed pool of query vectors from the same mixture, not in
    the data (new images): every script and size asks the same questions."""
    q, _ = sample(seed, QUERY_POOL, stream=1)
    return q[:count]


def exact_top_k(vectors: np.ndarray, qs: np.ndarray, k: int = 10,
                mask: np.ndarray | None = None, exclude: np.ndarray | None = None,
                block: int = 100_000) -> np.ndarray:
    """Row indexes of the k nearest by cosine distance (exact brute force, ties by index).

    Returns an (len(qs), k) array; -1 pads rows when fewer than k match."""
    qs = qs / np.linalg.norm(qs, axis=1, keepdims=True)
    best_d = np.full((len(qs), 0), np.inf, dtype=np.float64)
    best_i = np.full((len(qs), 0), -1, dtype=np.int64)
    for start in range(0, len(vectors), block):
        v = np.asarray(vectors[start:start + block])
        d = 1.0 - (qs @ v.T).astype(np.float64)
        if mask is not None:
            d[:, ~mask[start:start + block]] = np.inf
        idx = np.arange(start, start + len(v))
        if exclude is not None:
            for row, ex in enumerate(exclude):
                if start <= ex < start + len(v):
                    d[row, ex - start] = np.inf
        take = min(k, d.shape[1])
        part = np.argpartition(d, take - 1, axis=1)[:, :take]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, idx[part]], axis=1)
        order = np.lexsort((cand_i, cand_d), axis=1)[:, :k]
        best_d = np.take_along_axis(cand_d, order, 1)
        best_i = np.take_along_axis(cand_i, order, 1)
    best_i[~np.isfinite(best_d)] = -1
    return best_i


def vector_text(v: np.ndarray) -> str:
    """The reference pipeline's vector column: a JSON list of floats."""
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def write_embeddings_tsv(ds: Dataset, rows: int, path: Path) -> Path:
    """The first ``rows`` paintings as the reference pipeline's TSV (cached)."""
    if path.is_file():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write("image_file\tdescription\tauthor\ttitle\ttechnique\ttype\ttimeframe\tdate"
                 "\tschool\tvector\n")
        for i in range(rows):
            fh.write("\t".join([
                ds.image_file(i), f"A painting, study {i}.", ds.value("author", i),
                f"Painting {i}", ds.value("technique", i), ds.value("painting_type", i),
                ds.value("timeframe", i), str(int(ds.years[i])), ds.value("school", i),
                json.dumps([float(x) for x in np.round(ds.vectors[i], 7)]),
            ]) + "\n")
    tmp.replace(path)
    return path


def write_embeddings_parquet(ds: Dataset, rows: int, path: Path) -> Path:
    """The same rows as write_embeddings_tsv, as Parquet with float32 vectors (cached)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_file():
        return path
    vectors = np.ascontiguousarray(ds.vectors[:rows], dtype=np.float32)
    table = pa.table({
        "image_file": [ds.image_file(i) for i in range(rows)],
        "description": [f"A painting, study {i}." for i in range(rows)],
        "author": [ds.value("author", i) for i in range(rows)],
        "title": [f"Painting {i}" for i in range(rows)],
        "technique": [ds.value("technique", i) for i in range(rows)],
        "type": [ds.value("painting_type", i) for i in range(rows)],
        "timeframe": [ds.value("timeframe", i) for i in range(rows)],
        "date": [str(int(ds.years[i])) for i in range(rows)],
        "school": [ds.value("school", i) for i in range(rows)],
        "vector": pa.FixedSizeListArray.from_arrays(vectors.ravel(), vectors.shape[1]),
    })
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def describe(ds: Dataset, qs: np.ndarray) -> dict:
    """Shape facts of the data: similarity spread and nearest-neighbour gap."""
    sample_rows = np.asarray(ds.vectors[:: max(1, ds.n // 2000)])
    sims = sample_rows @ sample_rows.T
    off = sims[~np.eye(len(sample_rows), dtype=bool)]
    top = exact_top_k(ds.vectors, qs[:20], 10)
    d1 = [1 - float(np.dot(qs[i], ds.vectors[top[i, 0]])) for i in range(len(top))]
    d10 = [1 - float(np.dot(qs[i], ds.vectors[top[i, 9]])) for i in range(len(top))]
    return {"n": ds.n, "dim": DIM, "clusters": CLUSTERS, "groups": GROUPS,
            "mean_pairwise_cosine": float(off.mean()), "p99_pairwise_cosine":
            float(np.percentile(off, 99)), "median_nn1_distance": float(np.median(d1)),
            "median_nn10_distance": float(np.median(d10))}


if __name__ == "__main__":
    import argparse
    import time

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=100_000)
    a = p.parse_args()
    t = time.perf_counter()
    d = dataset(a.size)
    print(f"{a.size} rows ready in {time.perf_counter() - t:.1f}s")
    print(json.dumps(describe(d, queries(50)), indent=2))
    for f in d.filters():
        print(f["kind"], f["args"], f"{f['selectivity']:.4f}", f["matching"])
