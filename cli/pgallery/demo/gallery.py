"""The procedural sample gallery in SemArt's layout, for demos and tests (nothing downloaded).

:func:`generate` paints ``count`` small JPEGs (320 px longest side) into ``out/images`` and
writes ``out/semart.csv``: tab-separated, no quoting, UTF-8, with SemArt's nine columns
(IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE, TECHNIQUE, DATE, TYPE, SCHOOL, TIMEFRAME).

The paintings come from 24 invented painters (painters.py). Each has one composition family (landscape
with a horizon and a sky gradient, seascape, portrait of an oval figure on a dark ground,
still life on a table, interior, night scene, gold-ground altarpiece, figures in a
landscape, geometric abstraction, sepia study), a palette and a brush (stroke length,
direction, width and grain), so paintings by one painter look alike and different styles
look different. About one painting in fifteen is a "second version" or "study" of an
earlier one by the same painter (same composition, slightly different colour, brushwork
and framing): more-like-this finds it first. Descriptions name what is painted ("a stormy
sea with a lighthouse", "portrait of a young woman in a red dress") for keyword search.

Output is a pure function of (count, seed): the same arguments give the same bytes.
A marker file (``.sample-gallery.json``) makes a second call with the same arguments
return at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pgallery.demo.painters import BRUSH_WORDS, PAINTERS, PALETTE_WORDS, SUBJECTS, Painter
from pgallery.demo.painting import paint
from pgallery.errors import ArgError

FORMAT_VERSION = 1                 # bump when the drawing changes: regenerates old galleries
MARKER = ".sample-gallery.json"
COLUMNS = ("IMAGE_FILE", "DESCRIPTION", "AUTHOR", "TITLE", "TECHNIQUE", "DATE", "TYPE",
           "SCHOOL", "TIMEFRAME")
JPEG_QUALITY = 85
VERSION_SHARE = 15                 # one painting in VERSION_SHARE is a version of another


# -- metadata ----------------------------------------------------------------------------------

def _date(painter: Painter, rng: np.random.Generator) -> tuple[str, int]:
    year = int(rng.integers(painter.years[0], painter.years[1] + 1))
    form = rng.random()
    if form < 0.6:
        return str(year), year
    if form < 0.8:
        return f"c. {year}", year
    end = year + int(rng.integers(2, 8))
    return (f"{year}-{end % 100:02d}" if end // 100 == year // 100 else f"{year}-{end}"), year


def _timeframe(year: int) -> str:
    start = (year - 1) // 50 * 50 + 1
    return f"{start}-{start + 49}"


def _technique(painter: Painter, rng: np.random.Generator, size: tuple[int, int]) -> str:
    scale = rng.uniform(0.15, 0.5)
    return f"{painter.medium}, {round(size[1] * scale)} x {round(size[0] * scale)} cm"


def _slug(title: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words[:5])


@dataclass(frozen=True)
class Entry:
    """One row of the sample gallery, with what is needed to paint it."""

    index: int
    painter: Painter
    subject: int
    seed: int
    version: int
    title: str
    description: str
    type: str
    date: str
    year: int

    @property
    def image_file(self) -> str:
        return f"{self.index + 1:05d}-{_slug(self.title)}.jpg"


def plan(count: int, seed: int = 0) -> list[Entry]:
    """The gallery's rows (painter, subject, version, metadata), without the images."""
    rng = np.random.default_rng([seed, 0])
    entries: list[Entry] = []
    for index in range(count):
        if index >= 10 and index % VERSION_SHARE == VERSION_SHARE - 1:
            original = entries[int(rng.integers(0, len(entries)))]
            while original.version:
                original = entries[int(rng.integers(0, len(entries)))]
            version = int(rng.integers(1, 3))
            study = original.painter.family != "abstract" and rng.random() < 0.4
            title = (f"Study for {original.title}" if study
                     else f"{original.title} (second version)")
            date, year = _date(original.painter, rng)
            entries.append(Entry(index, original.painter, original.subject, original.seed,
                                 version, title,
                                 ("Study for " if study else "A second version of ")
                                 + original.description[0].lower() + original.description[1:],
                                 "study" if study else original.type, date, year))
            continue
        painter = PAINTERS[index % len(PAINTERS)] if index < len(PAINTERS) else \
            PAINTERS[int(rng.integers(0, len(PAINTERS)))]
        subjects = SUBJECTS[painter.family]
        subject = int(rng.integers(0, len(subjects)))
        kind, title, description = subjects[subject]
        date, year = _date(painter, rng)
        entries.append(Entry(index, painter, subject, int(rng.integers(0, 2**31)), 0, title,
                             description, kind, date, year))
    return entries


def _row(entry: Entry, size: tuple[int, int]) -> list[str]:
    painter = entry.painter
    rng = np.random.default_rng([entry.seed, 4, entry.version])
    style = (f" Painted in {PALETTE_WORDS[painter.palette]} with "
             f"{BRUSH_WORDS[painter.brush]}.")
    return [entry.image_file, entry.description + style,
            f"{painter.surname}, {painter.firstname}",
            entry.title, _technique(painter, rng, size), entry.date, entry.type,
            painter.school, _timeframe(entry.year)]


def generate(out_dir: Path, count: int = 300, seed: int = 0) -> Path:
    """Write ``count`` paintings to ``out_dir/images`` and ``out_dir/semart.csv``; return
    the CSV's path. A gallery already generated with the same arguments is kept as is."""
    if not isinstance(count, int) or count < 1:
        raise ArgError(f"count must be a positive integer, not {count!r}")
    out_dir = Path(out_dir)
    csv_path = out_dir / "semart.csv"
    marker = out_dir / MARKER
    wanted = {"count": count, "seed": seed, "format": FORMAT_VERSION}
    try:
        if csv_path.is_file() and json.loads(marker.read_text()) == wanted:
            return csv_path
    except (OSError, ValueError):
        pass
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    entries = plan(count, seed)
    keep = {entry.image_file for entry in entries}
    for old in images.glob("[0-9][0-9][0-9][0-9][0-9]-*.jpg"):   # from an earlier run
        if old.name not in keep:
            old.unlink()
    lines = ["\t".join(COLUMNS)]
    for entry in entries:
        image = paint(entry.painter, entry.subject, entry.seed, entry.version)
        image.save(images / entry.image_file, "JPEG", quality=JPEG_QUALITY)
        lines.append("\t".join(_row(entry, image.size)))
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    marker.write_text(json.dumps(wanted))
    return csv_path
