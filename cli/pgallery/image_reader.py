"""Read image files and http(s) images: the one reader every provider and the loader use.

Whoever reads an image (the ``local`` and ``clip`` providers, Azure's upload check in
images.py, the loader hashing files before it embeds them), a bad one fails with the same
typed error from :mod:`pgallery.errors`, whose class name is the ``code`` the loader
records per image in ``embedding_failure``:

    ImageNotFound        the file does not exist
    EmptyImage           zero bytes
    UnreadableImage      not an image (or a format Pillow cannot read), a directory, or a
                         file that cannot be opened
    TruncatedImage       the header is readable but the pixel data is cut short or corrupt
    ImageTooLarge        over Pillow's decompression-bomb limit (about 179 megapixels), or
                         a download over MAX_DOWNLOAD_BYTES
    ImageDownloadFailed  an http(s) image could not be fetched

The steps, for a provider that decodes pixels itself::

    data = read_image_bytes(source)            # file or URL; ImageNotFound, ...
    with open_image(data, label) as image:     # header only; EmptyImage, UnreadableImage
        with decoding(label):                  # pixel work; TruncatedImage, ImageTooLarge
            rgb = image.convert("RGB")

A new provider reads images through these and so fails the way the others do.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pgallery.errors import (EmbeddingFailed, EmptyImage, ImageDownloadFailed, ImageNotFound,
                             ImageTooLarge, TruncatedImage, UnreadableImage)

DOWNLOAD_TIMEOUT = 30.0           # seconds, for an image given by http(s) URL
MAX_DOWNLOAD_BYTES = 50 * 2**20   # refuse larger downloads instead of filling memory

# Paintings are scanned large on purpose: Pillow's "possible decompression bomb" warning
# (89 to 179 megapixels) is noise here; above that Pillow refuses and we say ImageTooLarge.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def is_url(source) -> bool:
    """An http(s) URL (fetched by the reader, or forwarded by a provider that can)."""
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def read_image_bytes(source: str | Path, timeout: float = DOWNLOAD_TIMEOUT) -> bytes:
    """The raw bytes of a local file or an http(s) URL (possibly empty: open_image says
    EmptyImage). Raises ImageNotFound, UnreadableImage, ImageDownloadFailed, ImageTooLarge."""
    if is_url(source):
        return _download(source, timeout)
    path = Path(source).expanduser()
    with _reading(path):
        return path.read_bytes()


def content_hash(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes (the loader stores it to skip images that
    have not changed). Raises ImageNotFound or UnreadableImage, as read_image_bytes."""
    digest = hashlib.sha256()
    path = Path(path)
    with _reading(path):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise ImageNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableImage(f"{path}: is a directory, not an image") from None
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _download(url: str, timeout: float) -> bytes:
    import requests

    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise ImageDownloadFailed(
                    f"{url}: download failed with HTTP {response.status_code}",
                    retryable=response.status_code == 429 or response.status_code >= 500)
            data = response.raw.read(MAX_DOWNLOAD_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise ImageDownloadFailed(f"{url}: download failed ({type(exc).__name__})",
                                  retryable=True) from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageTooLarge(f"{url}: larger than {MAX_DOWNLOAD_BYTES} bytes")
    return data


def open_image(data: bytes, label: str) -> Image.Image:
    """The image in ``data``, its header read (size, mode, format) and no pixels decoded
    yet. Raises EmptyImage, UnreadableImage or ImageTooLarge."""
    if not data:
        raise EmptyImage(f"{label}: the file is empty (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{label}: too many pixels to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise UnreadableImage(
            f"{label}: not an image file (or a format Pillow cannot read)") from None
    except Exception as exc:  # Pillow plugins raise assorted errors on garbage headers
        raise UnreadableImage(f"{label}: unreadable image header ({exc})") from None


@contextmanager
def decoding(label: str) -> Iterator[None]:
    """Around the work that decodes an opened image's pixels (load, convert, resize, EXIF
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
