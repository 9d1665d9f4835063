"""Synthetic pictures with known dominant colours, for the colour-search benchmarks.

Each picture is drawn from named base colours with known shares: one "dominant" colour
(50-75% of the picture), or a "pair" (two colours at 30-45% each), plus one to three
others, some of them small accents (4-10%) of colours that are dominant elsewhere, which
a measure that ignores shares would wrongly rank first. Every pixel gets noise and the
picture its own shade of each colour and a lighting gradient, so k-means sees spread clusters, as in a scan of a painting.
"""

from __future__ import annotations

import numpy as np

BASE = {
    "navy": (30, 58, 138), "gold": (212, 175, 55), "crimson": (170, 25, 45),
    "forest": (34, 100, 50), "ochre": (200, 130, 40), "sky": (120, 175, 225),
    "black": (20, 20, 22), "ivory": (240, 235, 215), "umber": (100, 65, 40),
    "purple": (110, 50, 140), "teal": (20, 120, 120), "rose": (220, 140, 160),
}
NAMES = tuple(BASE)
JITTER = 12.0       # sRGB units: the spread of one named colour between pictures


def picture(rng: np.random.Generator, parts: list[tuple[str, float]], side: int = 96,
            block: int = 4) -> np.ndarray:
    """side x side x 3 uint8: block x block tiles of each colour in its share, shuffled,
    with pixel noise and a lighting gradient."""
    tiles = (side // block) ** 2
    counts = [int(round(share * tiles)) for _, share in parts]
    counts[-1] = tiles - sum(counts[:-1])
    labels = np.repeat(np.arange(len(parts)), counts)
    rng.shuffle(labels)
    # each picture's own shade of each colour (a painter's blue is not the named blue)
    colours = np.array([BASE[name] for name, _ in parts], float)
    colours += rng.normal(0, JITTER, colours.shape)
    grid = colours[labels].reshape(side // block, side // block, 3)
    image = grid.repeat(block, axis=0).repeat(block, axis=1)
    image += rng.normal(0, 10, image.shape)
    image *= np.linspace(0.9, 1.1, side)[:, None, None]
    return np.clip(image, 0, 255).astype(np.uint8)


def gallery(n: int, seed: int = 7) -> list[dict]:
    """n pictures: {"pixels", "dominant": name or None, "pair": (a, b) or None, "parts"}."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = ("dominant", "pair", "mixed")[i % 3]
        names = list(rng.choice(NAMES, size=5, replace=False))
        if kind == "dominant":
            main = rng.uniform(0.5, 0.75)
            rest = 1 - main
            parts = [(names[0], main), (names[1], rest * 0.6), (names[2], rest * 0.4)]
        elif kind == "pair":
            a, b = rng.uniform(0.3, 0.45, size=2)
            parts = [(names[0], a), (names[1], b), (names[2], 1 - a - b)]
        else:   # five colours, none above 30%
            shares = rng.dirichlet(np.full(5, 4.0))
            shares = np.minimum(shares, 0.29)
            shares /= shares.sum()
            parts = list(zip(names, shares))
        if kind != "mixed" and rng.random() < 0.5:     # an accent of another colour
            accent = rng.uniform(0.04, 0.10)
            parts = [(name, share * (1 - accent)) for name, share in parts] + [
                (names[4], accent)]
        out.append({"pixels": picture(rng, parts), "parts": parts,
                    "dominant": names[0] if kind == "dominant" else None,
                    "pair": (names[0], names[1]) if kind == "pair" else None})
    return out
