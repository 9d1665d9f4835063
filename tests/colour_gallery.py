"""Pictures whose dominant colours are known, made with Pillow, for the colour-search tests.

Each picture is drawn from named colours in given shares (horizontal bands, a little
noise), so its palette is known before it is extracted: ``dominant`` names the colour that
fills ``main_share`` of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {
    "navy": (30, 58, 138), "gold": (212, 175, 55), "crimson": (170, 25, 45),
    "forest": (34, 100, 50), "sky": (120, 175, 225), "ivory": (240, 235, 215),
    "black": (20, 20, 22), "purple": (110, 50, 140),
}


def picture(parts: list[tuple[str, float]], size=(80, 60), seed: int = 0) -> Image.Image:
    """Bands of each named colour, in its share of the height, with noise of 6 levels."""
    width, height = size
    rows = []
    for name, share in parts:
        rows += [COLOURS[name]] * int(round(share * height))
    rows = (rows + [COLOURS[parts[-1][0]]] * height)[:height]
    pixels = np.repeat(np.array(rows, float)[:, None, :], width, axis=1)
    pixels += np.random.default_rng(seed).normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@dataclass
class ColourPicture:
    image_file: str
    path: Path
    dominant: str
    parts: list[tuple[str, float]]


def make_pictures(directory: Path, per_colour: int = 12, prefix: str = "col") -> list[ColourPicture]:
    """per_colour pictures dominated (60-80%) by each colour of COLOURS, the rest split
    between two others (one of them a small accent), as JPEG files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    out = []
    for c, dominant in enumerate(names):
        for i in range(per_colour):
            main = 0.6 + 0.2 * i / max(1, per_colour - 1)
            second = names[(c + 1 + i) % len(names)]
            accent = names[(c + 3 + i) % len(names)]
            if second == dominant:
                second = names[(c + 2) % len(names)]
            if accent in (dominant, second):
                accent = names[(c + 5) % len(names)]
            parts = [(dominant, main), (second, (1 - main) * 0.7), (accent, (1 - main) * 0.3)]
            image_file = f"{prefix}-{dominant}-{i:02d}.jpg"
            path = directory / image_file
            picture(parts, seed=c * 100 + i).save(path, quality=92)
            out.append(ColourPicture(image_file, path, dominant, parts))
    return out
