"""Uploaded query images: checked, embedded once, remembered by content hash.

    store = UploadStore(config)
    upload = store.add(data, name="photo.jpg", embed=provider.embed_image, model=model)
    store.get(upload.digest)        # the same query while the server runs (its permalink)

The bytes are sniffed with Pillow (the file name and the client's content type are never
trusted): only JPEG, PNG, GIF, BMP, WebP and TIFF are accepted, within the byte limit, and
the pixel count is checked from the header before anything is decoded, so a
decompression bomb is refused without being expanded. For the provider the image is
written to a private temporary directory (mode 0700, made when the server starts, removed
when it stops) under a name the server makes (the hash), and deleted as soon as it is
embedded. What is kept is the vector and a small JPEG preview, in memory, for the last
``max_uploads_kept`` uploads.

With several worker processes (`pgallery serve --workers N`) a permalink may reach
another worker than the one the image was uploaded to, so each upload is also written to
``config.shared_uploads`` (a private directory the parent process makes and removes), as
one file per digest written atomically, and a worker that does not hold an upload in memory
reads it from there. The directory keeps the newest ``max_uploads_kept`` too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pgallery.rendering.thumbnails import thumbnail_jpeg
from pgallery.web.config import WebConfig
from pgallery.web.errors import NotAnImage, UnknownUpload, UploadTooLarge
from pgallery.web.query import UPLOAD_HASH

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp",
                    "TIFF": "tif", "MPO": "jpg"}
PREVIEW_SIDE = 320


@dataclass(frozen=True)
class Upload:
    digest: str             # sha256 of the bytes, hex
    name: str               # the client's file name, for display only
    model: str              # the model that made the vector
    vector: np.ndarray
    preview: bytes | None   # a JPEG, at most PREVIEW_SIDE px
    width: int
    height: int


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) of an acceptable image; raises UploadTooLarge / NotAnImage."""
    if len(data) > max_bytes:
        raise UploadTooLarge(f"the image is {len(data) / 1048576:.1f} MB; the limit is "
                             f"{max_bytes / 1048576:.0f} MB")
    if not data:
        raise NotAnImage("the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                if width * height > max_pixels:
                    raise UploadTooLarge(f"the image is {width} x {height} pixels; the limit "
                                         f"is {max_pixels / 1e6:.0f} megapixels")
                if fmt not in ACCEPTED_FORMATS:
                    raise NotAnImage(f"{fmt} images are not accepted; send JPEG, PNG, GIF, "
                                     "BMP, WebP or TIFF")
                image.load()  # a truncated or corrupt file fails here, not in the provider
    except (UploadTooLarge, NotAnImage):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadTooLarge("the image has too many pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise NotAnImage("the upload is not an image (or is damaged); send JPEG, PNG, GIF, "
                         "BMP, WebP or TIFF") from None
    return fmt, width, height


class UploadStore:
    """The uploads of this server's lifetime (bounded, least recently used dropped)."""

    def __init__(self, config: WebConfig):
        self.config = config
        self.area = Path(tempfile.mkdtemp(prefix="pgallery-uploads-"))
        os.chmod(self.area, 0o700)
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes, *, name: str, model: str,
            embed: Callable[[Path], np.ndarray]) -> Upload:
        fmt, width, height = check_image(data, self.config.max_upload_bytes,
                                         self.config.max_pixels)
        digest = hashlib.sha256(data).hexdigest()
        known = self.peek(digest)
        if known is not None and known.model == model:
            return self.get(digest)
        path = self.area / f"{digest}.{ACCEPTED_FORMATS[fmt]}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            vector = np.asarray(embed(path), dtype=np.float32)
            preview = thumbnail_jpeg(path, PREVIEW_SIDE, cache=False)
        finally:
            path.unlink(missing_ok=True)
        upload = Upload(digest, name[:200], model, vector, preview, width, height)
        if self.config.shared_uploads is not None:
            self._share(upload)
        with self._lock:
            self._uploads[digest] = upload
            self._uploads.move_to_end(digest)
            while len(self._uploads) > self.config.max_uploads_kept:
                self._uploads.popitem(last=False)
        return upload

    def peek(self, digest: str) -> Upload | None:
        with self._lock:
            upload = self._uploads.get(digest)
        if upload is None and self.config.shared_uploads is not None:
            upload = self._shared(digest)
        return upload

    def get(self, digest: str) -> Upload:
        with self._lock:
            upload = self._uploads.get(digest)
            if upload is not None:
                self._uploads.move_to_end(digest)
        if upload is None and self.config.shared_uploads is not None:
            upload = self._shared(digest)
        if upload is None:
            raise UnknownUpload("this server does not know that upload (it keeps uploads "
                                "while it runs); upload the image again")
        return upload

    # --- between worker processes ---------------------------------------------------------

    def _share(self, upload: Upload) -> None:
        """Write the upload to the shared directory (atomically: a worker reading it sees
        the whole file or none), then drop the oldest beyond max_uploads_kept."""
        directory = Path(self.config.shared_uploads)
        meta = json.dumps({"name": upload.name, "model": upload.model,
                           "width": upload.width, "height": upload.height})
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, vector=upload.vector, meta=np.array(meta),
                         preview=np.frombuffer(upload.preview or b"", dtype=np.uint8))
            os.replace(tmp, directory / f"{upload.digest}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        kept = sorted(directory.glob("*.npz"), key=_mtime, reverse=True)
        for old in kept[self.config.max_uploads_kept:]:
            old.unlink(missing_ok=True)

    def _shared(self, digest: str) -> Upload | None:
        if not UPLOAD_HASH.fullmatch(digest):     # the file name is made of it
            return None
        try:
            with np.load(Path(self.config.shared_uploads) / f"{digest}.npz",
                         allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vector = data["vector"].astype(np.float32)
                preview = data["preview"].tobytes() or None
        except (OSError, ValueError, KeyError):
            return None
        upload = Upload(digest, meta["name"], meta["model"], vector, preview,
                        meta["width"], meta["height"])
        with self._lock:
            self._uploads[digest] = upload
            while len(self._uploads) > self.config.max_uploads_kept:
                self._uploads.popitem(last=False)
        return upload

    def close(self) -> None:
        shutil.rmtree(self.area, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
