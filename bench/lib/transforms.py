"""The image alterations of the `local` provider's quality checks, and the rank of an
original among others (shared by bench/benchmarks/local_quality.py, duplicates.py,
bench/lib/hard_data.py and tests/test_local_provider.py).

    resize50   both sides halved (Lanczos), saved as JPEG q92
    crop90     centre crop keeping 90 % of the width and of the height, JPEG q92
    jpeg50     re-encoded as JPEG quality 50
    colour     brightness x 1.1 (PIL ImageEnhance) and hue rotated by +5 degrees, JPEG q92
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance


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
