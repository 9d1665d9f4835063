"""How well the offline `local` provider finds an image again: transformed copies and crops.

    python bench/local_quality.py [--limit N]

For every image of ../shared/data/real-gallery/images (634), four altered copies are made
in memory and embedded; each must find its original among all 634 originals by exact
cosine brute force (numpy). The alterations (TRANSFORMS, also used by
tests/test_local_provider.py) are:

    resize50   both sides halved (Lanczos), saved as JPEG q92
    crop90     centre crop keeping 90 % of the width and of the height (5 % off each
               side), JPEG q92
    jpeg50     re-encoded as JPEG quality 50
    colour     brightness x 1.1 (PIL ImageEnhance) and hue rotated by +5 degrees, JPEG q92

It then embeds the 106 detail crops of near_duplicates.csv (queries/) and reports how
often their source image is at rank 1 and in the top 10, and the embedding time per image
(file read + decode + descriptors). Prints a table and writes
bench/results/local_quality.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "cli"))

from pgallery.providers.local import LocalDescriptorProvider  # noqa: E402

GALLERY = BENCH_DIR.parent.parent / "shared" / "data" / "real-gallery"


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _hue_shift(image: Image.Image, degrees: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    step = round(degrees / 360 * 256)
    return Image.merge("HSV", (h.point(lambda x: (x + step) % 256), s, v)).convert("RGB")


def resize50(image: Image.Image) -> bytes:
    return _jpeg(image.resize((max(1, image.width // 2), max(1, image.height // 2)),
                              Image.Resampling.LANCZOS))


def crop90(image: Image.Image) -> bytes:
    w, h = image.size
    return _jpeg(image.crop((round(w * 0.05), round(h * 0.05), round(w * 0.95),
                             round(h * 0.95))))


def jpeg50(image: Image.Image) -> bytes:
    return _jpeg(image, 50)


def colour(image: Image.Image) -> bytes:
    return _jpeg(_hue_shift(ImageEnhance.Brightness(image).enhance(1.1), 5))


TRANSFORMS = {"resize50": resize50, "crop90": crop90, "jpeg50": jpeg50, "colour": colour}
DESCRIPTIONS = {
    "resize50": "both sides halved (Lanczos), JPEG q92",
    "crop90": "centre crop keeping 90% of width and height, JPEG q92",
    "jpeg50": "re-encoded as JPEG quality 50",
    "colour": "brightness x1.1 and hue +5 degrees, JPEG q92",
}


def unit_rows(vectors) -> np.ndarray:
    matrix = np.stack(vectors).astype(np.float64)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def ranks(queries: np.ndarray, originals: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0-based rank of each query's true original by cosine (ties count against it)."""
    similarity = queries @ originals.T
    own = similarity[np.arange(len(queries)), truth]
    return (similarity > own[:, None]).sum(axis=1) + \
        ((similarity == own[:, None]).sum(axis=1) - 1)


def transform_ranks(provider, files: list[Path], originals: np.ndarray,
                    indices) -> dict[str, np.ndarray]:
    """For each transform, the rank of each original at ``indices`` among ``originals``."""
    out = {}
    queries: dict[str, list] = {name: [] for name in TRANSFORMS}
    for i in indices:
        with Image.open(files[i]) as image:
            image = image.convert("RGB")
            for name, transform in TRANSFORMS.items():
                queries[name].append(provider.embed_bytes(transform(image), name=str(files[i])))
    truth = np.asarray(list(indices))
    for name, vectors in queries.items():
        out[name] = ranks(unit_rows(vectors), originals, truth)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=0, help="transform only every n-th image "
                   "so that about LIMIT are tested (default: all)")
    a = p.parse_args(argv)
    if not (GALLERY / "images").is_dir():
        sys.exit(f"the real-image test data is not at {GALLERY}")
    from common import print_table, write_result

    provider = LocalDescriptorProvider()
    files = sorted((GALLERY / "images").glob("*.jpg"))
    provider.embed_image(files[0])                      # warm up (imports, tables)
    started = time.perf_counter()
    originals = unit_rows([provider.embed_image(f) for f in files])
    per_image_ms = (time.perf_counter() - started) / len(files) * 1000
    step = max(1, len(files) // a.limit) if a.limit else 1
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
    result = {"model": provider.model, "originals": len(files), "ms_per_image": per_image_ms,
              "transforms": DESCRIPTIONS,
              "rows": rows}
    path = write_result("local_quality", result)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
