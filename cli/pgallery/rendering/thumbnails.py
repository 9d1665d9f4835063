"""Small JPEG thumbnails as data: URIs, so an HTML page carries its own pictures.

    from pgallery.rendering.thumbnails import thumbnail_data_uri
    uri = thumbnail_data_uri("images/p-foo.jpg")          # "data:image/jpeg;base64,..." or None

The picture is read through the image intake (pgallery.intake), as every image is.

A thumbnail is the picture turned upright (EXIF orientation), flattened to RGB (transparency
on a neutral grey) and scaled so its longest side is at most ``max_side`` pixels; it is never
enlarged. Results are kept in a small in-memory LRU cache keyed by the file's resolved path,
modification time and size, so rendering the same results again costs almost nothing and an
edited file is picked up. A missing or unreadable file gives None (the page shows a
placeholder instead); nothing here raises for a bad image.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image, ImageOps

from pgallery.errors import ArgError, ImageError
from pgallery.intake import CheckedImage, decoding, read_image

DEFAULT_MAX_SIDE = 256
DEFAULT_QUALITY = 82
CACHE_SIZE = 512

_BACKGROUND = (40, 40, 42)  # what transparent pixels become

_cache: OrderedDict[tuple, bytes | None] = OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}


def _key(path: Path, max_side: int, quality: int) -> tuple | None:
    try:
        resolved = path.resolve()
        stat = resolved.stat()
    except OSError:
        return None
    if not resolved.is_file():
        return None
    return (str(resolved), stat.st_mtime_ns, stat.st_size, max_side, quality)


def _make_jpeg(source: Path | CheckedImage, max_side: int, quality: int) -> bytes | None:
    try:
        checked = read_image(source, decode=False)   # decoded here, once
        with checked.open() as image, decoding(checked.name):
            # Let the JPEG decoder scale down while decoding: much faster for big files.
            image.draft("RGB", (max_side * 2, max_side * 2))
            image = ImageOps.exif_transpose(image)
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            image = _to_rgb(image)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
            return out.getvalue()
    except ImageError:
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def thumbnail_jpeg(path: str | Path | CheckedImage, max_side: int = DEFAULT_MAX_SIDE,
                   quality: int = DEFAULT_QUALITY, *, cache: bool = True) -> bytes | None:
    """The JPEG bytes of ``path``'s thumbnail (a file, or an image the intake has checked),
    or None if the file is missing or unreadable.

    ``cache=False`` skips the in-memory cache (for callers that keep their own, on disk);
    a CheckedImage is never cached (it has no file to key on)."""
    if max_side < 1:
        raise ArgError(f"thumbnail size must be at least 1 pixel, got {max_side}")
    if isinstance(path, CheckedImage):
        return _make_jpeg(path, max_side, quality)
    path = Path(path)
    if not cache:
        return _make_jpeg(path, max_side, quality) if _key(path, max_side, quality) else None
    key = _key(path, max_side, quality)
    if key is None:
        return None
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return _cache[key]
        _stats["misses"] += 1
    data = _make_jpeg(path, max_side, quality)
    with _lock:
        _cache[key] = data
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def thumbnail_data_uri(path: str | Path, max_side: int = DEFAULT_MAX_SIDE,
                       quality: int = DEFAULT_QUALITY) -> str | None:
    """``data:image/jpeg;base64,...`` for ``path``'s thumbnail, or None (missing/unreadable)."""
    data = thumbnail_jpeg(path, max_side, quality)
    if data is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def cache_info() -> dict:
    """Hits, misses and current size of the thumbnail cache (for tests and benchmarks)."""
    with _lock:
        return {"hits": _stats["hits"], "misses": _stats["misses"], "size": len(_cache)}


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _stats["hits"] = 0
        _stats["misses"] = 0
