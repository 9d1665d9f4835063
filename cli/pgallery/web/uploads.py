"""Uploaded query images: checked, embedded once, remembered by content hash.

    store = UploadStore(config)
    upload = store.add(data, name="photo.jpg", embed=provider.embed_image, model=model)
    upload = store.add("https://example.org/a.jpg", name="a.jpg", ...)    # an image URL
    store.get(upload.digest)        # the same query while the server runs (its permalink)

The bytes (or the URL) go through the image intake (pgallery.intake) with the web's rules:
an image URL only to a public address (AddressPolicy.PUBLIC_ONLY, unless the server
allows private URLs), never a local file; the format sniffed by Pillow (the file name and
the client's content type are never trusted) and only JPEG, PNG, GIF, BMP, WebP and TIFF
accepted, within the byte limit; the pixel count checked from the header before anything
is decoded, so a decompression bomb is refused without being expanded. The provider
embeds the checked image from memory: nothing is written to disk. What is kept is the
vector and a small JPEG preview, in memory, for the last ``max_uploads_kept`` uploads.

With several worker processes (`pgallery serve --workers N`) a permalink may reach
another worker than the one the image was uploaded to, so each upload is also written to
``config.shared_uploads`` (a private directory the parent process makes and removes), as
one file per digest written atomically, and a worker that does not hold an upload in memory
reads it from there. The directory keeps the newest ``max_uploads_kept`` too.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pgallery.intake import AddressPolicy, CheckedImage, read_image
from pgallery.rendering.thumbnails import thumbnail_jpeg
from pgallery.web.config import WebConfig
from pgallery.web.errors import UnknownUpload
from pgallery.web.query import UPLOAD_HASH

ACCEPTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO")  # MPO: a JPEG
PREVIEW_SIDE = 320
NAME_CHARS = 200                      # of the client's file name, kept for display


@dataclass(frozen=True)
class Upload:
    digest: str             # sha256 of the bytes, hex
    name: str               # the client's file name, for display only
    model: str              # the model that made the vector
    vector: np.ndarray
    preview: bytes | None   # a JPEG, at most PREVIEW_SIDE px
    width: int
    height: int


def web_policy(config: WebConfig) -> AddressPolicy:
    """The address policy for image URLs that clients send."""
    return AddressPolicy.ANY if config.allow_private_urls else AddressPolicy.PUBLIC_ONLY


def read_upload(source: bytes | str, name: str, config: WebConfig) -> CheckedImage:
    """An uploaded image (bytes) or an image URL, checked with the web's rules (see the
    module's doc). Raises the intake's typed errors."""
    return read_image(source, policy=web_policy(config), max_bytes=config.max_upload_bytes,
                      max_pixels=config.max_pixels, formats=ACCEPTED_FORMATS,
                      timeout=config.url_timeout, name=name[:NAME_CHARS] or "image",
                      allow_paths=False)


class UploadStore:
    """The uploads of this server's lifetime (bounded, least recently used dropped)."""

    def __init__(self, config: WebConfig):
        self.config = config
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, source: bytes | str, *, name: str, model: str,
            embed: Callable[[CheckedImage], np.ndarray]) -> Upload:
        """Check ``source`` (an upload's bytes or an image URL; see read_upload), embed it
        with ``embed`` unless this image is known for ``model``, and remember it."""
        image = read_upload(source, name, self.config)
        digest = image.sha256
        known = self.peek(digest)
        if known is not None and known.model == model:
            return self.get(digest)
        vector = np.asarray(embed(image), dtype=np.float32)
        preview = thumbnail_jpeg(image, PREVIEW_SIDE, cache=False)
        upload = Upload(digest, image.name, model, vector, preview, image.width,
                        image.height)
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
        """Nothing to release: uploads live in memory (and in the shared directory, which
        the parent process removes)."""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
