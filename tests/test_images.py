"""pgallery.images: what is sent unchanged, what is fixed, what is refused (and why)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from pgallery.errors import EmbeddingFailed
from pgallery.intake import content_hash
from pgallery.images import MAX_BYTES, MAX_SIDE, prepare_image


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def save(image: Image.Image, path, fmt: str, **options):
    image.save(path, fmt, **options)
    return path


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_an_acceptable_jpeg_is_sent_byte_for_byte_unchanged(tmp_path):
    path = save(noise(320, 240), tmp_path / "ok.jpg", "JPEG")
    prepared = prepare_image(path)
    assert prepared.data == path.read_bytes()
    assert not prepared.changed
    assert (prepared.format, prepared.size) == ("JPEG", (320, 240))


@pytest.mark.parametrize("fmt,suffix", [("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp"),
                                        ("WEBP", "webp"), ("TIFF", "tif")])
def test_other_accepted_formats_are_sent_unchanged(tmp_path, fmt, suffix):
    path = save(noise(64, 48), tmp_path / f"ok.{suffix}", fmt)
    prepared = prepare_image(path)
    assert prepared.data == path.read_bytes() and prepared.format == fmt


def test_an_image_with_a_side_of_16000_px_or_more_is_downscaled(tmp_path):
    path = save(noise(16_500, 200, "L"), tmp_path / "panorama.png", "PNG")
    prepared = prepare_image(path)
    image = decode(prepared.data)
    assert image.size == prepared.size == (4096, 50)
    assert max(image.size) < MAX_SIDE
    assert any("downscaled from 16500x200 to 4096x50" in change for change in prepared.changes)


def test_a_jpeg_with_a_side_of_16000_px_or_more_is_downscaled(tmp_path):
    path = save(noise(16_100, 300), tmp_path / "scroll.jpg", "JPEG")
    prepared = prepare_image(path)
    assert decode(prepared.data).size == prepared.size == (4096, 76)
    assert prepared.format == "JPEG"


def test_a_file_over_20_mb_is_re_encoded_under_the_limit(tmp_path):
    gradient = np.tile(np.linspace(0, 255, 2700, dtype=np.uint8), (2700, 1))
    path = save(Image.fromarray(np.stack([gradient] * 3, axis=-1)), tmp_path / "big.bmp",
                "BMP")
    assert path.stat().st_size > MAX_BYTES
    prepared = prepare_image(path)
    assert 0 < len(prepared.data) <= MAX_BYTES
    assert decode(prepared.data).size == (2700, 2700)
    assert prepared.format == "JPEG" and prepared.changed


def test_a_cmyk_jpeg_is_converted_to_rgb_jpeg(tmp_path):
    path = save(noise(80, 60).convert("CMYK"), tmp_path / "print.jpg", "JPEG")
    prepared = prepare_image(path)
    image = decode(prepared.data)
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert prepared.changes == ("converted JPEG CMYK to JPEG RGB",)


def test_a_palette_image_with_transparency_becomes_an_rgba_png(tmp_path):
    palette = noise(40, 40).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = save(palette, tmp_path / "sprite.png", "PNG", transparency=0)
    prepared = prepare_image(path)
    image = decode(prepared.data)
    assert (image.format, image.mode) == ("PNG", "RGBA")


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    samples = np.full((30, 30), 32_896, dtype=np.uint16)  # mid-grey in 16 bits
    path = save(Image.fromarray(samples), tmp_path / "scan16.png", "PNG")
    prepared = prepare_image(path)
    image = decode(prepared.data)
    assert image.mode == "L"
    assert abs(int(np.asarray(image).mean()) - 128) <= 2  # clipping would give 255


def test_a_format_outside_the_accepted_list_is_converted_to_jpeg(tmp_path):
    path = save(noise(50, 40), tmp_path / "old.tga", "TGA")
    prepared = prepare_image(path)
    assert decode(prepared.data).format == "JPEG"
    assert prepared.changes == ("converted TGA RGB to JPEG RGB",)


@pytest.mark.parametrize("setup,code", [
    (lambda p: p.write_bytes(b""), "EmptyImage"),
    (lambda p: p.write_text("these are not the pixels you are looking for"), "UnreadableImage"),
    (lambda p: None, "ImageNotFound"),
    (lambda p: p.mkdir(), "UnreadableImage"),
])
def test_files_that_are_not_images_fail_with_a_reason(tmp_path, setup, code):
    path = tmp_path / "bad.jpg"
    setup(path)
    with pytest.raises(EmbeddingFailed) as failure:
        prepare_image(path)
    assert failure.value.code == code
    assert "bad.jpg" in str(failure.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_file_fails_as_truncated(tmp_path, fmt):
    whole = save(noise(200, 150), tmp_path / "whole", fmt).read_bytes()
    path = tmp_path / "cut"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(EmbeddingFailed) as failure:
        prepare_image(path)
    assert failure.value.code == "TruncatedImage"
    assert "truncated" in str(failure.value)


def test_sides_must_be_more_than_10_px(tmp_path):
    with pytest.raises(EmbeddingFailed) as failure:
        prepare_image(save(noise(10, 300), tmp_path / "thin.png", "PNG"))
    assert failure.value.code == "ImageTooSmall" and "10x300" in str(failure.value)
    assert prepare_image(save(noise(11, 11), tmp_path / "tiny.png", "PNG")).size == (11, 11)


def test_an_image_too_thin_to_downscale_is_refused(tmp_path):
    with pytest.raises(EmbeddingFailed) as failure:
        prepare_image(save(noise(16_500, 12, "L"), tmp_path / "strip.png", "PNG"))
    assert failure.value.code == "ImageTooSmall"


def test_bytes_can_be_prepared_without_a_file(tmp_path):
    data = save(noise(30, 30), tmp_path / "a.png", "PNG").read_bytes()
    assert prepare_image(data).data == data
    with pytest.raises(EmbeddingFailed) as failure:
        prepare_image(b"", name="upload.png")
    assert failure.value.code == "EmptyImage" and "upload.png" in str(failure.value)


def test_content_hash_is_the_sha256_of_the_file_and_follows_changes(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"painting v1")
    assert content_hash(path) == hashlib.sha256(b"painting v1").hexdigest()
    path.write_bytes(b"painting v2")
    assert content_hash(path) == hashlib.sha256(b"painting v2").hexdigest()


def test_every_real_gallery_image_is_sent_unchanged(real_gallery):
    files = sorted((real_gallery / "images").iterdir())
    assert files
    for path in files:
        prepared = prepare_image(path)
        assert not prepared.changed, (path.name, prepared.changes)
