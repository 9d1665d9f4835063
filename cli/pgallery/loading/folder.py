"""Read a plain folder of images: every image file below it, with what metadata it carries.

The folder is walked recursively, following symbolic links to directories but never
entering a directory twice (so a link loop ends instead of hanging). Files are images by
their extension; anything else (notes, thumbs.db, .DS_Store) is skipped quietly. A file
with an image extension that turns out to be unreadable is *not* skipped: it goes to the
pipeline, which reports and records it.

Each image becomes a painting keyed by its path relative to the folder (``sub/dir/a.jpg``),
titled after its file name (``starry_night.jpg`` -> "starry night"), with EXIF metadata
where present: Artist -> author, DateTimeOriginal -> date, ImageDescription -> description.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pgallery.errors import ArgError
from pgallery.intake import read_image
from pgallery.loading.records import PaintingRecord, RejectedRow, clean
from pgallery.loading.sources import ImageItem, SourceListing

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".webp", ".tif",
    ".tiff", ".ico", ".mpo",
})
EXIF_IFD = 0x8769              # the Exif sub-IFD (where DateTimeOriginal lives)
TAG_IMAGE_DESCRIPTION = 0x010E
TAG_ARTIST = 0x013B
TAG_DATETIME_ORIGINAL = 0x9003


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("._")


def image_files(root: Path) -> list[Path]:
    """The image files below ``root``, sorted, each directory visited once."""
    seen_dirs: set[tuple[int, int]] = set()
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root, followlinks=True):
        try:
            st = os.stat(directory)
        except OSError:
            subdirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a link back to a directory we walked
            subdirs[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        subdirs.sort()
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        found.extend(Path(directory) / f for f in sorted(files) if is_image_name(f))
    return found


def title_from_name(path: Path) -> str | None:
    """'the_starry-night' -> 'the starry-night' (underscores and runs of spaces collapsed)."""
    return clean(re.sub(r"[\s_]+", " ", path.stem))


def _exif_text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return clean(value.replace("\x00", ""))


def _exif_date(value: str | None) -> str | None:
    """EXIF's '2021:05:03 10:00:00' -> '2021-05-03'; other text unchanged."""
    if value is None:
        return None
    match = re.match(r"^(\d{4}):(\d{2}):(\d{2})", value)
    if match:
        return "-".join(match.groups()) if match[2] != "00" else match[1]
    return value


def exif_metadata(path: Path) -> dict[str, str | None]:
    """author, date and description from the file's EXIF; empty if it has none (or the
    file cannot be read: the pipeline reports unreadable images, not this function)."""
    try:
        with read_image(path, decode=False).open() as image:   # the header: no pixels
            exif = image.getexif()
            artist = exif.get(TAG_ARTIST)
            description = exif.get(TAG_IMAGE_DESCRIPTION)
            taken = exif.get_ifd(EXIF_IFD).get(TAG_DATETIME_ORIGINAL)
    except Exception:  # Pillow raises assorted errors on broken files
        return {}
    values = {
        "author": _exif_text(artist),
        "date": _exif_date(_exif_text(taken)),
        "description": _exif_text(description),
    }
    return {k: v for k, v in values.items() if v}


def read_folder(root: Path) -> SourceListing:
    """Every image file below ``root`` as an ImageItem. ArgError if root is no directory."""
    root = Path(root)
    if not root.is_dir():
        raise ArgError(f"{root}: no such directory")
    root = Path(os.path.abspath(root))
    listing = SourceListing()
    for path in image_files(root):
        image_file = path.relative_to(root).as_posix()
        try:
            image_file.encode("utf-8")
        except UnicodeEncodeError:
            listing.rejected.append(RejectedRow(
                str(path).encode("utf-8", "replace").decode(), None,
                "the file name is not valid UTF-8; rename the file"))
            continue
        record = PaintingRecord(image_file=image_file, title=title_from_name(path),
                                image_uri=str(path), **exif_metadata(path))
        listing.items.append(ImageItem(path, record, str(path)))
    return listing
