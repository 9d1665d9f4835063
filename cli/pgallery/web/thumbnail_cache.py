"""Thumbnails and large views of paintings, made once and kept on disk.

    cache = ThumbnailCache(config.cache_dir)
    found = cache.get(image_uri, side=320)     # (path of a JPEG, etag), or None

The picture is made by rendering/thumbnails.py (upright, RGB, never enlarged) from the
painting's recorded location only; the location comes from the database, never from a
request. The file's name is a hash of (resolved location, modification time, size, side),
so an edited image gets a new thumbnail and a new ETag. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pgallery.rendering.thumbnails import thumbnail_jpeg

THUMB_SIDE = 320
LARGE_SIDE = 1600


def local_path(image_uri: str | None) -> Path | None:
    """The local file a painting's image_uri names, or None (a URL, or nothing)."""
    if not image_uri:
        return None
    if image_uri.lower().startswith("file:"):
        return Path(url2pathname(urlsplit(image_uri).path))
    if "://" in image_uri:
        return None
    return Path(image_uri)


class ThumbnailCache:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def get(self, image_uri: str | None, side: int) -> tuple[Path, str] | None:
        path = local_path(image_uri)
        if path is None:
            return None
        try:
            resolved = path.resolve()
            stat = resolved.stat()
        except (OSError, ValueError):
            return None
        key = f"{resolved}\0{stat.st_mtime_ns}\0{stat.st_size}\0{side}"
        etag = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        cached = self.directory / str(side) / f"{etag}.jpg"
        if cached.is_file():
            return cached, etag
        data = thumbnail_jpeg(resolved, side, cache=False)
        if data is None:
            return None
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, cached)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return cached, etag
