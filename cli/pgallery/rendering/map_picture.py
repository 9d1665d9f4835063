"""`pgallery map --png FILE`: a static picture of the map (Pillow), for people without a
browser. Dots for a sample of every painting, and thumbnails of an evenly spread few on
top, each where the map puts it. It draws what it is given (points from
Gallery.map_points, images through the thumbnail reader); it runs no SQL."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from pgallery.rendering.thumbnails import thumbnail_jpeg

BACKGROUND = (250, 249, 246)
DOT = (70, 90, 140)
MARGIN = 0.03


def draw_map(points: Sequence[dict], size: int = 1600, *,
             thumbnails: Sequence[dict] = (), image_of: Callable[[str], str | None] = None,
             thumb_side: int | None = None) -> Image.Image:
    """A size x size picture: a dot per point (x, y in [0, 1]; y grows upwards, as on
    /explore) and the thumbnails of ``thumbnails`` (points whose image ``image_of``
    finds) centred on their positions."""
    picture = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    scale = size * (1 - 2 * MARGIN)

    def at(p: dict) -> tuple[float, float]:
        return size * MARGIN + p["x"] * scale, size * MARGIN + (1 - p["y"]) * scale

    r = max(1.5, size / 600)
    for p in points:
        x, y = at(p)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=DOT)
    side = thumb_side or max(24, size // 22)
    for p in thumbnails:
        location = image_of(p["image_file"]) if image_of else None
        data = thumbnail_jpeg(location, max_side=side) if location else None
        if data is None:
            continue
        with Image.open(io.BytesIO(data)) as thumb:
            thumb = thumb.convert("RGB")
            x, y = at(p)
            left, top = int(x - thumb.width / 2), int(y - thumb.height / 2)
            draw.rectangle((left - 1, top - 1, left + thumb.width, top + thumb.height),
                           outline=(255, 255, 255))
            picture.paste(thumb, (left, top))
    return picture


def save(picture: Image.Image, path: Path) -> None:
    picture.save(path, "PNG", optimize=True)
