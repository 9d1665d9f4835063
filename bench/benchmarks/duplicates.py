"""Near-duplicate groups: recall and precision per threshold, and near_duplicates()'s time.

The calibration of the `local` model's default threshold on real images, and the time
near_duplicates() takes as the collection grows.

    python bench/run.py duplicates --size 20000
    python bench/run.py duplicates --size 100000 --set calibration=false

Calibration. The 634 images of ../shared/data/real-gallery, plus four altered copies of
each (bench/lib/transforms.py: 50% resize, 90% centre crop, JPEG q50,
brightness x1.1 + hue +5 degrees), are embedded with the offline `local` provider and
loaded (3,170 paintings) under its model name, local-descriptors/v1. For each threshold,
SELECT * FROM near_duplicates(t) groups them, and:

    recall     of the 4 x 634 (copy, original) pairs, the share in one group
    precision  of every pair of paintings sharing a group, the share that are versions of
               the same image (an original and its copies, or two copies of one image)

The same two figures are computed in numpy on the exact raw cosine (every pair, no index)
to show why near_duplicates compares `local` vectors on duplicate_signature() instead.

Timing: near_duplicates() at the default threshold on the synthetic bench database
bench_<size> (bench/lib/benchdb.py): wall time, the server backend's CPU time and the
load average (run it at several sizes to see how it grows).
"""

from __future__ import annotations

import os
import time

import numpy as np

from common import REAL_GALLERY, WORK, connect, fresh_database, print_table

THRESHOLDS = (0.85, 0.88, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97)
RAW_THRESHOLDS = (0.93, 0.94, 0.95, 0.96, 0.97, 0.98)
LOCAL_MODEL = "local-descriptors/v1"


def embed_gallery(cache) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, vectors, source index) of the originals and their copies; cached in a .npz
    (embedding 3,170 images takes about a minute)."""
    from PIL import Image

    from transforms import TRANSFORMS

    from pgallery.providers.local import LocalDescriptorProvider

    files = sorted((REAL_GALLERY / "images").glob("*.jpg"))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
    if cache and cache.is_file():
        data = np.load(cache)
        return list(data["names"]), data["vectors"], data["source"]
    provider = LocalDescriptorProvider()
    names, vectors, source = [], [], []
    for i, path in enumerate(files):
        names.append(path.name)
        vectors.append(provider.embed_image(path))
        source.append(i)
        with Image.open(path) as image:
            image = image.convert("RGB")
            for label, transform in TRANSFORMS.items():
                names.append(f"copy-{label}-{path.name}")
                vectors.append(provider.embed_bytes(transform(image), name=str(path)))
                source.append(i)
    result = names, np.stack(vectors).astype(np.float32), np.asarray(source)
    if cache:
        np.savez(cache, names=np.array(names), vectors=result[1], source=result[2])
    return result


def figures(group_of: dict[int, int], source: np.ndarray, names: list[str]) -> dict:
    """recall and precision (see the module's docstring) of an assignment row -> group."""
    originals = [i for i, n in enumerate(names) if not n.startswith("copy-")]
    first = {source[i]: i for i in originals}
    copies = [i for i, n in enumerate(names) if n.startswith("copy-")]
    found = sum(1 for c in copies if c in group_of and group_of.get(first[source[c]]) ==
                group_of[c])
    members: dict[int, list[int]] = {}
    for row, g in group_of.items():
        members.setdefault(g, []).append(row)
    pairs = true_pairs = 0
    for rows in members.values():
        count = len(rows)
        pairs += count * (count - 1) // 2
        _, same = np.unique(source[rows], return_counts=True)
        true_pairs += int((same * (same - 1) // 2).sum())
    return {"recall": found / len(copies), "precision": true_pairs / pairs if pairs else 1.0,
            "groups": len(members), "grouped": len(group_of), "pairs": pairs,
            "largest": max((len(r) for r in members.values()), default=0)}


def raw_cosine_groups(vectors: np.ndarray, threshold: float) -> dict[int, int]:
    """Connected components of every pair with raw cosine >= threshold (exact, numpy)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    a, b = np.nonzero(np.triu(similarity >= threshold, 1))
    parent = list(range(len(vectors)))

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a, b):
        rx, ry = root(x), root(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    linked = set(a) | set(b)
    return {int(i): root(i) for i in linked}


def calibrate(cache) -> dict:
    from pgallery.loading.records import PaintingRecord
    from pgallery.loading.after_load import after_load
    from pgallery.loading.writer import register_model, write_batch

    started = time.perf_counter()
    names, vectors, source = embed_gallery(cache)
    embed_s = time.perf_counter() - started
    url = fresh_database("bench_duplicates")
    with connect(url) as conn:
        register_model(conn, LOCAL_MODEL, vectors.shape[1], "local")
        write_batch(conn, LOCAL_MODEL, [PaintingRecord(image_file=n, title=n, embedding=v)
                                        for n, v in zip(names, vectors)])
        after_load(conn, tune=False)
    row_of = {n: i for i, n in enumerate(names)}
    rows, timings = [], []
    with connect(url, autocommit=True) as conn:
        default = conn.execute("SELECT duplicate_threshold(%s)", (LOCAL_MODEL,)).fetchone()[0]
        for t in sorted(set(THRESHOLDS) | {round(default, 4)}):
            began = time.perf_counter()
            got = conn.execute("SELECT group_id, image_file FROM near_duplicates(%s::real)",
                               (t,)).fetchall()
            timings.append(time.perf_counter() - began)
            result = figures({row_of[f]: g for g, f in got}, source, names)
            rows.append({"score": "signature (near_duplicates)", "threshold": t,
                         "default": abs(t - default) < 1e-6, **result})
    for t in RAW_THRESHOLDS:
        rows.append({"score": "raw cosine (numpy, all pairs)", "threshold": t,
                     "default": False,
                     **figures(raw_cosine_groups(vectors.astype(np.float64), t), source,
                               names)})
    print_table(f"near-duplicate groups of {len(names)} real images (634 originals + 4 "
                "copies each), local provider", rows,
                ["score", "threshold", "default", "recall", "precision", "groups",
                 "grouped", "pairs", "largest"])
    chosen = next(r for r in rows if r["default"])
    print(f"\ndefault threshold {default:g}: recall {chosen['recall']:.4f}, "
          f"precision {chosen['precision']:.4f} (requirement: both >= 0.95)")
    return {"images": len(names), "originals": int(source.max()) + 1,
            "embed_s": embed_s, "default_threshold": default, "rows": rows,
            "near_duplicates_s_median": float(np.median(timings))}


def current_layer(url: str) -> None:
    """Install the head layer (sql/idempotent) as it is now into a reused bench database:
    one already at the head revision is not migrated again, so it would keep the functions
    of the day it was built."""
    from pgallery import migrations

    with connect(url) as conn:
        with conn.transaction():
            migrations.pin_search_path(conn)
            text = migrations.head_layer()
            migrations.drop_layer(conn, text)
            migrations.install_layer(conn, text)


def backend_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a server process has used, from /proc: the measure
    that other engineers' work on the same two cores does not inflate (the wall time it
    does, several-fold at a load average of 10). None when the server is not local."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timing(sizes: list[int]) -> list[dict]:
    import benchdb

    out = []
    for n in sizes:
        url = benchdb.ensure(n)["url"]
        current_layer(url)
        with connect(url, autocommit=True) as conn:
            conn.execute("SELECT count(*) FROM painting_embedding").fetchone()
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            load = os.getloadavg()[0]
            cpu, began = backend_cpu_s(pid), time.perf_counter()
            got = conn.execute("SELECT group_id FROM near_duplicates()").fetchall()
            seconds = time.perf_counter() - began
            cpu = backend_cpu_s(pid) - cpu if cpu is not None else None
        out.append({"n": n, "seconds": seconds, "cpu_s": cpu,
                    "cpu_ms_per_painting": cpu / n * 1000 if cpu is not None else None,
                    "load_average": load, "grouped": len(got),
                    "groups": len({g for g, in got})})
        print(f"  n = {n:,}: {seconds:.1f} s wall, "
              + (f"{cpu:.1f} s CPU in the backend ({cpu / n * 1000:.2f} ms a painting)"
                 if cpu is not None else "CPU not measured (remote server)")
              + f", load average {load:.1f}")
    rows = [r for r in out if r.get("cpu_s")]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        exponent = np.log(b["cpu_s"] / a["cpu_s"]) / np.log(b["n"] / a["n"])
        at_100k = b["cpu_s"] * (100_000 / b["n"]) ** exponent
        print(f"  CPU grows as n^{exponent:.2f}; at 100,000 that is about {at_100k:.0f} s")
        out.append({"growth_exponent": float(exponent), "extrapolated_100k_cpu_s": float(at_100k)})
    print_table("near_duplicates() on synthetic collections (default threshold)",
                [r for r in out if "n" in r], ["n", "seconds", "cpu_s", "cpu_ms_per_painting",
                                               "load_average", "grouped", "groups"])
    return out


DEFAULTS = {"size": 20_000, "calibration": True, "timing": True}
QUICK = {"calibration": False}


def run(ctx) -> dict:
    """Calibration on the real images (always 3,170 paintings), then the time of
    near_duplicates() on bench_<size> (datagen's mixture); either may be switched off."""
    a = ctx.params

    result: dict = {}
    if a.calibration:
        if not (REAL_GALLERY / "images").is_dir():
            raise SystemExit(f"the real-image test data is not at {REAL_GALLERY}")
        result["calibration"] = calibrate(WORK / "duplicates_vectors.npz")
    if a.timing:
        result["timing"] = timing([a.size])
    return result

