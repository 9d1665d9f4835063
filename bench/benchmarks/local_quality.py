"""How well the offline `local` provider finds an image again: transformed copies and crops.

    python bench/run.py local_quality [--size N]

For every image of ../shared/data/real-gallery/images (634), four altered copies are made
in memory and embedded; each must find its original among all 634 originals by exact
cosine brute force (numpy). The alterations (bench/lib/transforms.py, also used by
tests/test_local_provider.py) are:

    resize50   both sides halved (Lanczos), saved as JPEG q92
    crop90     centre crop keeping 90 % of the width and of the height (5 % off each
               side), JPEG q92
    jpeg50     re-encoded as JPEG quality 50
    colour     brightness x 1.1 (PIL ImageEnhance) and hue rotated by +5 degrees, JPEG q92

It then embeds the 106 detail crops of near_duplicates.csv (queries/) and reports how
often their source image is at rank 1 and in the top 10, and the embedding time per image
(file read + decode + descriptors).
"""

from __future__ import annotations

import csv
import time

import numpy as np

from common import REAL_GALLERY, print_table
from pgallery.providers.local import LocalDescriptorProvider
from transforms import DESCRIPTIONS, ranks, transform_ranks, unit_rows

GALLERY = REAL_GALLERY


DEFAULTS = {"size": 634}
QUICK = {"size": 60}


def run(ctx) -> dict:
    """``size``: how many of the 634 images are transformed (every n-th); all 634 are the
    originals searched."""
    a = ctx.params
    if not (GALLERY / "images").is_dir():
        raise SystemExit(f"the real-image test data is not at {GALLERY}")

    provider = LocalDescriptorProvider()
    files = sorted((GALLERY / "images").glob("*.jpg"))
    provider.embed_image(files[0])                      # warm up (imports, tables)
    started = time.perf_counter()
    originals = unit_rows([provider.embed_image(f) for f in files])
    per_image_ms = (time.perf_counter() - started) / len(files) * 1000
    step = max(1, len(files) // a.size) if a.size else 1
    indices = range(0, len(files), step)

    rows = []
    for name, r in transform_ranks(provider, files, originals, indices).items():
        rows.append({"query": name, "n": len(r), "top1": float(np.mean(r == 0)),
                     "top10": float(np.mean(r < 10)), "median_rank": float(np.median(r) + 1)})

    with open(GALLERY / "near_duplicates.csv", newline="") as handle:
        crops = list(csv.DictReader(handle))
    position = {f.name: i for i, f in enumerate(files)}
    crop_vectors = unit_rows([provider.embed_image(GALLERY / "queries" / c["query_file"])
                              for c in crops])
    truth = np.array([position[c["source_image_file"]] for c in crops])
    r = ranks(crop_vectors, originals, truth)
    rows.append({"query": "detail crop", "n": len(r), "top1": float(np.mean(r == 0)),
                 "top10": float(np.mean(r < 10)), "median_rank": float(np.median(r) + 1)})

    print_table(f"local provider ({provider.model}): rank of the original among "
                f"{len(files)} images (cosine, exact)", rows)
    print(f"\nembedding: {per_image_ms:.1f} ms/image (read + decode + descriptors, "
          f"{len(files)} JPEGs of at most 512 px, one process)")
    return {"model": provider.model, "originals": len(files), "transformed": len(indices),
            "ms_per_image": per_image_ms, "transforms": DESCRIPTIONS, "rows": rows}
