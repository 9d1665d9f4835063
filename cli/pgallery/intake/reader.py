"""read_image: bytes, a file or an http(s) URL in; a CheckedImage or a typed error out."""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pgallery.errors import (BadImageUrl, EmbeddingFailed, EmptyImage, ImageNotFound,
                             ImageTooLarge, TruncatedImage, UnreadableImage)
from pgallery.intake.fetch import AddressPolicy, fetch, is_url, label_of

DOWNLOAD_TIMEOUT = 30.0            # seconds, for an image given by http(s) URL
MAX_BYTES = 256 * 2**20            # the default byte cap, for files and downloads alike
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")   # a URL, not a path

# Paintings are scanned large on purpose: Pillow's "possible decompression bomb" warning
# (89 to 179 megapixels) is noise here; above that Pillow refuses and we say ImageTooLarge.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class CheckedImage:
    """An image's bytes, read and checked: a known format, its size within the limits and
    (if ``decoded``) its pixel data decodable. ``str()`` of it is its name, which starts
    every message."""

    data: bytes = field(repr=False)
    name: str                     # the file, the URL or the upload's name, for messages
    format: str                   # Pillow's name: JPEG, PNG, ...
    width: int
    height: int
    decoded: bool = True          # the pixels were decoded once (truncation ruled out)

    def __str__(self) -> str:
        return self.name

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def open(self) -> Image.Image:
        """A fresh Pillow image of the bytes (header read, pixels not yet decoded: decode
        them inside ``decoding(image.name)``). Use it as a context manager."""
        return Image.open(io.BytesIO(self.data))


def read_image(source: bytes | str | os.PathLike | CheckedImage, *,
               policy: AddressPolicy = AddressPolicy.ANY, max_bytes: int = MAX_BYTES,
               max_pixels: int | None = None, formats: Collection[str] | None = None,
               timeout: float = DOWNLOAD_TIMEOUT, name: str | None = None,
               allow_paths: bool = True, decode: bool = True) -> CheckedImage:
    """The checked image of ``source``: bytes, a file path, or an http(s) URL fetched
    under ``policy`` (a CheckedImage is returned as it is).

    ``max_bytes`` caps the bytes (a file is measured before it is read, a download while
    it streams); ``max_pixels`` caps width x height, checked from the header before any
    pixel is decoded (None: Pillow's decompression-bomb limit); ``formats`` (Pillow's
    names) are the formats accepted (None: any Pillow reads). ``name`` is what messages
    call the image (default: the path, the URL, or "N-byte image"). A caller that reads
    what strangers send passes ``allow_paths=False``: a string must then be a URL.

    ``decode`` decodes the pixels once (JPEGs at 1/8 scale, which still reads every byte)
    to find truncated or corrupt data. A caller that decodes them itself straight away,
    inside :func:`decoding`, passes False and meets the same TruncatedImage there, without
    paying for two decodes (the local provider, which decodes at a reduced scale too).

    Raises ImageNotFound, EmptyImage, UnreadableImage, TruncatedImage, ImageTooLarge,
    ImageDownloadFailed or BadImageUrl (pgallery.errors).
    """
    if isinstance(source, CheckedImage):
        return source if source.decoded or not decode else check_image(
            source.data, source.name, max_bytes=max_bytes, max_pixels=max_pixels,
            formats=formats)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or f"{len(data)}-byte image"
    elif isinstance(source, str) and _SCHEME.match(source):
        label = name or label_of(source)
        if not is_url(source):
            raise BadImageUrl(f"{label}: the image URL must be an http:// or https:// "
                              "address")
        data = fetch(source, policy=policy, max_bytes=max_bytes, timeout=timeout)
    elif not allow_paths:
        raise BadImageUrl(f"{label_of(str(source))}: give an http:// or https:// URL or the "
                          "image itself; local files are not read here")
    else:
        label = name or str(source)
        data = read_file(Path(source).expanduser(), label, max_bytes)
    return check_image(data, label, max_bytes=max_bytes, max_pixels=max_pixels,
                       formats=formats, decode=decode)


def read_file(path: Path, label: str, max_bytes: int = MAX_BYTES) -> bytes:
    """A file's bytes (possibly none: check_image says EmptyImage). Raises ImageNotFound,
    UnreadableImage or ImageTooLarge."""
    with _reading(label):
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise ImageTooLarge(_over_bytes(label, size, max_bytes))
            data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:                # a file that grew, or a device
        raise ImageTooLarge(_over_bytes(label, len(data), max_bytes))
    return data


def content_hash(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes (the loader stores it to skip images that
    have not changed), read in chunks. Raises ImageNotFound or UnreadableImage, as
    read_image does for the same file."""
    digest = hashlib.sha256()
    with _reading(str(path)):
        with open(Path(path).expanduser(), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_image(data: bytes, label: str, *, max_bytes: int = MAX_BYTES,
                max_pixels: int | None = None, formats: Collection[str] | None = None,
                decode: bool = True) -> CheckedImage:
    """The CheckedImage of bytes already in memory (read_image's last step)."""
    if len(data) > max_bytes:
        raise ImageTooLarge(_over_bytes(label, len(data), max_bytes))
    if not data:
        raise EmptyImage(f"{label}: the file is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{label}: too many pixels to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise UnreadableImage(
            f"{label}: not an image file (or a format Pillow cannot read)") from None
    except Exception as exc:  # Pillow plugins raise assorted errors on garbage headers
        raise UnreadableImage(f"{label}: unreadable image header ({exc})") from None
    with image:
        fmt, (width, height) = image.format or "unknown", image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLarge(f"{label}: the image is {width} x {height} pixels; the limit "
                                f"is {max_pixels / 1e6:g} megapixels")
        if formats is not None and fmt not in formats:
            raise UnreadableImage(f"{label}: {fmt} images are not accepted; send "
                                  f"{_listing(formats)}")
        if decode:
            with decoding(label):
                if fmt == "JPEG":   # decode at 1/8 scale: cheap, and every byte is read
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    return CheckedImage(data, label, fmt, width, height, decode)


@contextmanager
def decoding(label: str) -> Iterator[None]:
    """Around the work that decodes an image's pixels (load, convert, resize, EXIF
    transpose): Pillow's failures become TruncatedImage or ImageTooLarge."""
    try:
        yield
    except EmbeddingFailed:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{label}: too many pixels to decode safely ({exc})") from None
    except Exception as exc:  # OSError "image file is truncated", SyntaxError, ValueError
        raise TruncatedImage(
            f"{label}: the image data is truncated or corrupt ({exc})") from None


@contextmanager
def _reading(label: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise ImageNotFound(f"{label}: no such file") from None
    except IsADirectoryError:
        raise UnreadableImage(f"{label}: is a directory, not an image") from None
    except OSError as exc:
        raise UnreadableImage(f"{label}: cannot read the file ({exc.strerror or exc})"
                              ) from None


def _over_bytes(label: str, size: int, limit: int) -> str:
    return (f"{label}: the image is {size / 1048576:.1f} MB; the limit is "
            f"{limit / 1048576:g} MB")


def _listing(formats: Collection[str]) -> str:
    names = [{"WEBP": "WebP"}.get(f, f) for f in dict.fromkeys(formats) if f != "MPO"]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
