"""Read a SemArt metadata file: which images to load, and each one's metadata.

SemArt's CSV files (``semart_train.csv``, ...) are tab-separated with a header of nine
columns ``IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE, TECHNIQUE, DATE, TYPE, SCHOOL,
TIMEFRAME`` (any case, any order; only IMAGE_FILE is required) and no quoting. The
original files are cp1252; re-saved copies are often UTF-8. Each line is decoded as
UTF-8 and, failing that, as cp1252, so a file mixing both still loads.

Nothing is silently dropped: a line with the wrong number of fields, an undecodable or
NUL-bearing line, or a row without a usable IMAGE_FILE is a :class:`RejectedRow` with its
reason; when one IMAGE_FILE appears on several lines the last one wins and the earlier
ones are reported as warnings.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from pgallery.errors import ArgError
from pgallery.loading.records import PaintingRecord, RejectedRow, clean
from pgallery.loading.sources import ImageItem, SourceListing

# SemArt column (lower-cased) -> PaintingRecord field
SEMART_FIELDS = {
    "image_file": "image_file", "description": "description", "author": "author",
    "title": "title", "technique": "technique", "date": "date", "type": "painting_type",
    "school": "school", "timeframe": "timeframe",
}


def _decode(raw: bytes) -> tuple[str | None, str | None]:
    """(text, None), or (None, reason) when the line is neither UTF-8 nor cp1252."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), None
    except UnicodeDecodeError as exc:
        return None, (f"neither UTF-8 nor cp1252 text (byte 0x{raw[exc.start]:02x} at "
                      f"position {exc.start + 1})")


def safe_image_file(name: str) -> str | None:
    """Why IMAGE_FILE cannot name a file inside the images directory, or None if it can."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "IMAGE_FILE is an absolute path; it must be relative to the images directory"
    if ".." in posix.parts:
        return "IMAGE_FILE points outside the images directory (..)"
    return None


def read_semart_csv(path: Path, images_dir: Path) -> SourceListing:
    """Every loadable row of a SemArt CSV as an ImageItem (file under ``images_dir``).

    Raises ArgError when the file cannot be read at all (missing, no IMAGE_FILE column).
    """
    path = Path(path)
    if not path.is_file():
        raise ArgError(f"{path}: no such file")
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ArgError(f"{path}: is UTF-16 text; save it as UTF-8 or cp1252")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    header, reason = _decode(lines[0].rstrip(b"\r")) if lines else ("", None)
    columns = [c.strip().lower() for c in (header or "").split("\t")]
    if reason or "image_file" not in columns:
        raise ArgError(
            f"{path}: no IMAGE_FILE column in the header; expected a tab-separated SemArt "
            f"file (IMAGE_FILE, DESCRIPTION, AUTHOR, TITLE, TECHNIQUE, DATE, TYPE, SCHOOL, "
            f"TIMEFRAME), found: {(header or '')[:200]!r}")
    fields = [SEMART_FIELDS.get(c) for c in columns]
    key = columns.index("image_file")
    images_dir = Path(os.path.abspath(images_dir))

    listing = SourceListing()
    by_file: dict[str, int] = {}        # image_file -> index in listing.items
    for number, raw in enumerate(lines[1:], start=2):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        where = f"line {number}"
        text, reason = _decode(raw)
        if text is None:
            listing.rejected.append(RejectedRow(where, None, reason))
            continue
        values = text.split("\t")
        image_file = clean(values[key]) if len(values) > key else None
        if "\x00" in text:
            listing.rejected.append(RejectedRow(where, image_file, "holds a NUL character"))
            continue
        if len(values) != len(columns):
            listing.rejected.append(RejectedRow(
                where, image_file,
                f"{len(values)} tab-separated fields, expected {len(columns)}"))
            continue
        if not image_file:
            listing.rejected.append(RejectedRow(where, None, "no IMAGE_FILE"))
            continue
        problem = safe_image_file(image_file)
        if problem:
            listing.rejected.append(RejectedRow(where, image_file, problem))
            continue
        record = PaintingRecord(image_file=image_file)
        for name, value in zip(fields, values):
            if name and name != "image_file":
                setattr(record, name, clean(value))
        file_path = images_dir / image_file
        record.image_uri = str(file_path)
        item = ImageItem(file_path, record, where)
        if image_file in by_file:
            earlier = listing.items[by_file[image_file]]
            listing.warnings.append(
                f"{image_file}: on {earlier.where} and {where}; {where} wins")
            listing.items[by_file[image_file]] = item
        else:
            by_file[image_file] = len(listing.items)
            listing.items.append(item)
    return listing
