"""One image reader, one set of errors: the same bad file fails the same way whichever
provider reads it (local, clip, Azure's upload check) and when the loader meets it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pgallery import errors
from pgallery.database import connect
from pgallery.errors import EmbeddingFailed
from pgallery.intake import content_hash, read_image
from pgallery.images import prepare_image
from pgallery.loading.pipeline import load_images
from pgallery.loading.records import PaintingRecord
from pgallery.loading.sources import ImageItem, SourceListing
from pgallery.providers.local import LocalDescriptorProvider


def _jpeg(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# name -> (how to make it under a directory, the code every reader gives)
BAD_FILES = {
    "missing.jpg": (lambda p: None, "ImageNotFound"),
    "empty.jpg": (lambda p: p.write_bytes(b""), "EmptyImage"),
    "text.jpg": (lambda p: p.write_text("no pixels here\n"), "UnreadableImage"),
    "truncated.jpg": (lambda p: p.write_bytes(_jpeg((100, 90))[:1500]), "TruncatedImage"),
    "folder.jpg": (lambda p: p.mkdir(), "UnreadableImage"),
    "huge.png": (lambda p: Image.new("L", (200, 200)).save(p), "ImageTooLarge"),
}


@pytest.fixture
def bad_files(tmp_path, monkeypatch) -> dict[str, Path]:
    # "too many pixels" without a gigabyte of test data: lower Pillow's limit so that
    # 200 x 200 is over twice it (where Pillow refuses), for every reader alike
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    paths = {}
    for name, (make, _) in BAD_FILES.items():
        make(tmp_path / name)
        paths[name] = tmp_path / name
    return paths


def _error(call) -> EmbeddingFailed:
    with pytest.raises(EmbeddingFailed) as caught:
        call()
    return caught.value


def test_each_bad_file_has_one_typed_error_from_the_reader(bad_files):
    for name, (_, code) in BAD_FILES.items():
        error = _error(lambda: LocalDescriptorProvider().embed_image(bad_files[name]))
        assert isinstance(error, getattr(errors, code)), name
        assert isinstance(error, errors.ImageError) and error.code == code, name
        assert error.exit_code == errors.ProviderError.exit_code
        assert str(error).startswith(str(bad_files[name])), str(error)


def test_local_and_azures_upload_check_fail_alike(bad_files):
    local = LocalDescriptorProvider()
    for name, path in bad_files.items():
        a = _error(lambda: local.embed_image(path))
        b = _error(lambda: prepare_image(path))
        assert (type(a), a.code) == (type(b), b.code), name
        if name not in ("truncated.jpg", "huge.png"):  # Pillow's detail differs by scale
            assert str(a) == str(b)


def test_clip_fails_like_local(bad_files, tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_clip import build_tiny_clip

    from pgallery.providers.clip import ClipProvider

    local = LocalDescriptorProvider()
    with ClipProvider(build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny")) as clip:
        for name, path in bad_files.items():
            a, b = _error(lambda: local.embed_image(path)), _error(lambda: clip.embed_image(path))
            assert (type(a), a.code) == (type(b), b.code), name
            batch = list(clip.embed_images([path]))[0]
            assert batch.error.code == a.code, name


def test_the_loader_records_the_providers_errors(bad_files, make_database):
    url = make_database(prefix="reader")
    local = LocalDescriptorProvider()
    listing = SourceListing()
    for name, path in bad_files.items():
        listing.items.append(ImageItem(path, PaintingRecord(image_file=name,
                                                            image_uri=str(path)), name))
    with connect(url) as conn:
        load_images(conn, local, listing)
        with conn.transaction():
            recorded = dict((f, (c, m)) for f, c, m in conn.execute(
                "SELECT image_file, code, message FROM embedding_failure"))
    assert set(recorded) == set(BAD_FILES)
    for name, path in bad_files.items():
        direct = _error(lambda: local.embed_image(path))
        assert recorded[name] == (direct.code, str(direct)), name


def test_hashing_and_reading_fail_alike(bad_files):
    for name in ("missing.jpg", "folder.jpg"):
        a = _error(lambda: content_hash(bad_files[name]))
        b = _error(lambda: read_image(bad_files[name]))
        assert (type(a), str(a)) == (type(b), str(b))
