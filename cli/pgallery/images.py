"""Check and fix images before the Azure provider uploads them (Azure AI Vision's limits).

Azure AI Vision accepts an image of more than 0 and at most 20,971,520 bytes, larger than
10 x 10 and smaller than 16,000 x 16,000 pixels, in a common format. :func:`prepare_image`
returns the bytes to send:

* an acceptable file (JPEG, PNG, GIF, BMP, WEBP or TIFF in an ordinary mode, within the
  limits) is sent unchanged: the intake decoded it once to catch truncated files (JPEGs at
  1/8 scale, which is cheap), and it is never re-encoded;
* a file over a limit (bytes or pixels) is downscaled so its longest side is at most
  ``DOWNSCALE_SIDE`` px (smaller still if the bytes do not fit) and re-encoded;
* odd modes (CMYK, palette or grey with alpha, 16-bit and float) and other formats (ICO,
  MPO, PSD, ...) are converted: to PNG when the image has transparency, else to JPEG. The
  EXIF orientation is applied whenever an image is re-encoded.

Files that cannot be sent raise a typed :class:`~pgallery.errors.ImageError` (codes in
pgallery/intake/, which reads and checks the image: ImageNotFound, EmptyImage,
UnreadableImage, TruncatedImage, ImageTooLarge), or ImageTooSmall for a side of 10 px or less (also: too
thin to downscale), so loaders record the reason per image and carry on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pgallery.errors import ImageTooSmall
from pgallery.intake import CheckedImage, decoding, read_image

MAX_BYTES = 20_971_520        # at most this many bytes
MIN_SIDE = 10                 # each side must be greater than this
MAX_SIDE = 16_000             # each side must be less than this
DOWNSCALE_SIDE = 4096         # longest side after a downscale (the model sees far less)
JPEG_QUALITY = 90
SENDABLE_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"})
SENDABLE_MODES = frozenset({"1", "L", "RGB", "RGBA", "P"})


@dataclass(frozen=True)
class PreparedImage:
    """The bytes to upload, and what (if anything) was changed to make them acceptable."""

    data: bytes
    format: str                  # JPEG, PNG, ... of `data`
    size: tuple[int, int]        # (width, height) of `data`
    changes: tuple[str, ...] = ()  # e.g. ("downscaled from 17000x300 to 4096x72",)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def prepare_image(source: str | Path | bytes | CheckedImage,
                  name: str | None = None) -> PreparedImage:
    """The bytes to send for one image (a file path, the file's bytes, or a CheckedImage).

    Raises an ImageError (see the module docstring) when the image cannot be sent.
    """
    checked = read_image(source, name=name)
    data, label = checked.data, checked.name
    image = checked.open()
    width, height = image.size
    if width <= MIN_SIDE or height <= MIN_SIDE:
        raise ImageTooSmall(
            f"{label}: {width}x{height} px is too small; both sides must be more than "
            f"{MIN_SIDE} px")
    fmt = image.format or "unknown"
    too_big = width >= MAX_SIDE or height >= MAX_SIDE or len(data) > MAX_BYTES
    odd = fmt not in SENDABLE_FORMATS or not _ordinary_mode(image)
    if not too_big and not odd:  # the intake has decoded it: sent as it is
        return PreparedImage(data, fmt, (width, height))
    longest = max(width, height)
    if too_big and fmt == "JPEG" and image.mode in ("L", "RGB") and longest > DOWNSCALE_SIDE:
        scale = DOWNSCALE_SIDE / longest  # decode big JPEGs at a reduced scale
        image.draft(image.mode, (round(width * scale), round(height * scale)))
    _load(image, label)
    return _fix(image, data, fmt, too_big, label)


def _load(image: Image.Image, label: str) -> None:
    with decoding(label):
        image.load()


def _ordinary_mode(image: Image.Image) -> bool:
    if image.mode not in SENDABLE_MODES:
        return False
    return not (image.mode == "P" and "transparency" in image.info)


def _fix(image: Image.Image, data: bytes, fmt: str, too_big: bool,
         label: str) -> PreparedImage:
    """Convert to 8-bit RGB/L (JPEG) or RGBA (PNG), downscale if needed, re-encode."""
    original = image.size
    changes: list[str] = []
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not cost us the image
        pass
    converted, out_fmt = _to_8bit(image)
    if fmt not in SENDABLE_FORMATS or converted.mode != image.mode or out_fmt != fmt:
        changes.append(f"converted {fmt} {image.mode} to {out_fmt} {converted.mode}")
    image = converted
    if max(image.size) >= MAX_SIDE or (too_big and max(image.size) > DOWNSCALE_SIDE):
        image = _downscale(image, DOWNSCALE_SIDE, label)
    encoded = _encode(image, out_fmt)
    while len(encoded) > MAX_BYTES:
        if out_fmt == "PNG":  # flatten transparency onto white: JPEG is far smaller
            image, out_fmt = _flatten(image), "JPEG"
        else:
            image = _downscale(image, int(max(image.size) * 0.75), label)
        encoded = _encode(image, out_fmt)
    if image.size != original:
        changes.append(f"downscaled from {original[0]}x{original[1]} "
                       f"to {image.size[0]}x{image.size[1]}")
    if not changes:
        changes.append(f"re-encoded {len(data):,} bytes as {len(encoded):,}")
    return PreparedImage(encoded, out_fmt, image.size, tuple(changes))


def _to_8bit(image: Image.Image) -> tuple[Image.Image, str]:
    """An 8-bit image and the format to save it in (PNG if it has transparency)."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if mode == "F":
            low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
            pixels = (pixels - low) * (255.0 / (high - low) if high > low else 0.0)
        elif pixels.max(initial=0) > 255:  # 16-bit samples
            pixels = pixels / 257.0
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L"), "JPEG"
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in image.info)
    if has_alpha:
        return image.convert("RGBA"), "PNG"
    if mode in ("1", "L"):
        return image.convert("L"), "JPEG"
    return image.convert("RGB"), "JPEG"


def _downscale(image: Image.Image, longest: int, label: str) -> Image.Image:
    width, height = image.size
    scale = longest / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(size) <= MIN_SIDE:
        raise ImageTooSmall(
            f"{label}: {width}x{height} px is too large, and too thin to downscale to fewer "
            f"than {MAX_SIDE} px without a side of {MIN_SIDE} px or less")
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _flatten(image: Image.Image) -> Image.Image:
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()
