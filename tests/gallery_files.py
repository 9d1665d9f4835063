"""Real image files and SemArt CSVs written with Pillow, for the loading tests.

Every image differs in its bytes (a distinct colour and pattern), so the fake Azure
server's per-image request counters, keyed by content, tell the images apart.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from PIL import Image, ImageDraw

SEMART_HEADER = ["IMAGE_FILE", "DESCRIPTION", "AUTHOR", "TITLE", "TECHNIQUE", "DATE", "TYPE",
                 "SCHOOL", "TIMEFRAME"]


def make_image(path: Path, seed: int, size: tuple[int, int] = (48, 40), exif=None) -> Path:
    """A small JPEG unique to ``seed`` (optionally with EXIF tags {tag: value})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((seed * 67) % 256, (seed * 131 + 40) % 256, (seed * 29 + 90) % 256)
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((seed % 20, seed % 15, seed % 20 + 15, seed % 15 + 12),
                   fill=(255 - colour[0], 255 - colour[1], 255 - colour[2]))
    kwargs = {"quality": 92}
    if exif:
        info = Image.Exif()
        for tag, value in exif.items():
            if tag == 0x9003:  # DateTimeOriginal lives in the Exif sub-IFD
                info.get_ifd(0x8769)[tag] = value
            else:
                info[tag] = value
        kwargs["exif"] = info
    image.save(path, "JPEG", **kwargs)
    return path


def semart_row(image_file: str, i: int, **overrides) -> list[str]:
    values = {"IMAGE_FILE": image_file, "DESCRIPTION": f"Painting number {i}.",
              "AUTHOR": f"PAINTER, Number {i % 3}", "TITLE": f"Title {i}",
              "TECHNIQUE": "Oil on canvas, 50 x 40 cm", "DATE": str(1600 + i),
              "TYPE": "portrait", "SCHOOL": "Dutch", "TIMEFRAME": "1601-1650"}
    values.update(overrides)
    return [values[c] for c in SEMART_HEADER]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8",
              header: list[str] = SEMART_HEADER) -> Path:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def make_semart(root: Path, count: int, start: int = 0) -> tuple[Path, Path, list[Path]]:
    """A SemArt-like collection: root/semart.csv and root/Images/ with ``count`` JPEGs."""
    images = root / "Images"
    paths = [make_image(images / f"{i:05d}-painting.jpg", i) for i in range(start, start + count)]
    csv = write_csv(root / "semart.csv",
                    [semart_row(p.name, start + n) for n, p in enumerate(paths)])
    return csv, images, paths


def scalar(url: str, query: str, params=()):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


def rows(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def embedded_files(url: str, model: str) -> list[str]:
    """image_file of every painting with a vector of ``model`` (one entry per vector)."""
    return [r[0] for r in rows(
        url, "SELECT p.image_file FROM painting p JOIN painting_embedding e USING (painting_id)"
             " WHERE e.model = %s ORDER BY 1", (model,))]
