"""The offline `local` provider: its interface, its errors, and that it finds images again.

The quality test runs on the real images of ../shared/data/real-gallery (skipped when the
folder is absent): altered copies of every fourth image must find their original among
all 634 at rank 1 (exact cosine) in at least 95 % of cases, for each alteration.
bench/benchmarks/local_quality.py measures the full set and the detail crops.
"""

from __future__ import annotations

import http.server
import io
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pgallery.errors import ConfigError, EmbeddingFailed, TextNotSupported
from pgallery.providers import get_provider
from pgallery.providers.local import DIMENSION, SIZES, WEIGHTS, LocalDescriptorProvider

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "lib"))
import transforms  # noqa: E402  (the alterations and the rank computation)


@pytest.fixture(scope="module")
def provider():
    return LocalDescriptorProvider()


def _scene(path: Path, sky=(90, 140, 220), ground=(60, 120, 50), sun=(250, 220, 60),
           size=(300, 200), fmt="JPEG") -> Path:
    """A small landscape-like picture (sky, ground, a sun)."""
    image = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.rectangle([0, h * 0.6, w, h], fill=ground)
    draw.ellipse([w * 0.7, h * 0.1, w * 0.85, h * 0.3], fill=sun)
    image.save(path, fmt)
    return path


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- interface ---------------------------------------------------------------------------------

def test_get_provider_local_builds_an_image_only_1024d_provider():
    p = get_provider("local")
    assert isinstance(p, LocalDescriptorProvider)
    assert (p.name, p.model, p.dimension, p.supports_text) == \
        ("local", "local-descriptors/v1", 1024, False)


def test_text_search_is_refused_with_text_not_supported(provider):
    with pytest.raises(TextNotSupported, match="images only"):
        provider.embed_text("a stormy sea")


def test_unknown_options_and_bad_timeouts_are_config_errors():
    with pytest.raises(ConfigError, match="no option"):
        LocalDescriptorProvider(batch_size=4)
    with pytest.raises(ConfigError, match="timeout"):
        LocalDescriptorProvider(timeout="soon")
    with pytest.raises(ConfigError, match="positive"):
        LocalDescriptorProvider(timeout=0)


def test_blocks_fill_exactly_1024_dimensions_and_weights_sum_to_one():
    assert sum(SIZES.values()) == DIMENSION == 1024
    assert set(WEIGHTS) == set(SIZES)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_vector_is_finite_unit_float32_of_1024_dims(provider, tmp_path):
    v = provider.embed_image(_scene(tmp_path / "a.jpg"))
    assert v.dtype == np.float32 and v.shape == (1024,)
    assert np.isfinite(v).all()
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_same_file_gives_identical_vectors_from_str_path_and_a_fresh_provider(provider,
                                                                              tmp_path):
    path = _scene(tmp_path / "a.jpg")
    first = provider.embed_image(path)
    assert np.array_equal(first, provider.embed_image(str(path)))
    assert np.array_equal(first, LocalDescriptorProvider().embed_image(path))


def test_a_resized_copy_is_much_closer_than_a_different_picture(provider, tmp_path):
    original = provider.embed_image(_scene(tmp_path / "a.jpg"))
    smaller = provider.embed_image(_scene(tmp_path / "b.jpg", size=(150, 100)))
    night = provider.embed_image(_scene(tmp_path / "c.jpg", sky=(10, 10, 40),
                                        ground=(20, 20, 20), sun=(240, 240, 220)))
    assert _cos(original, smaller) > 0.95
    assert _cos(original, night) < _cos(original, smaller) - 0.2


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_image_modes_are_embedded(provider, tmp_path, mode):
    image = Image.open(_scene(tmp_path / "a.png", fmt="PNG")).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = tmp_path / f"b.{fmt.lower()}"
    image.save(path, fmt)
    v = provider.embed_image(path)
    assert np.isfinite(v).all() and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_a_transparent_background_reads_as_white(provider, tmp_path):
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse([16, 16, 48, 48], fill=(200, 30, 30, 255))
    rgba.save(tmp_path / "t.png")
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    ImageDraw.Draw(white).ellipse([16, 16, 48, 48], fill=(200, 30, 30))
    white.save(tmp_path / "w.png")
    assert _cos(provider.embed_image(tmp_path / "t.png"),
                provider.embed_image(tmp_path / "w.png")) > 0.99


def test_a_one_pixel_and_a_uniform_image_still_have_a_direction(provider, tmp_path):
    Image.new("RGB", (1, 1), (10, 200, 30)).save(tmp_path / "dot.png")
    Image.new("RGB", (50, 50), (0, 0, 0)).save(tmp_path / "black.png")
    for name in ("dot.png", "black.png"):
        v = provider.embed_image(tmp_path / name)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


# -- errors ------------------------------------------------------------------------------------

def test_a_missing_file_is_image_not_found(provider, tmp_path):
    with pytest.raises(EmbeddingFailed, match="no such file") as err:
        provider.embed_image(tmp_path / "nope.jpg")
    assert err.value.code == "ImageNotFound"


@pytest.mark.parametrize("content, code", [(b"", "EmptyImage"),
                                           (b"this is not an image\n", "UnreadableImage")],
                         ids=["empty", "text"])
def test_a_file_that_is_not_an_image_fails_with_its_reason(provider, tmp_path, content, code):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(EmbeddingFailed) as err:
        provider.embed_image(path)
    assert err.value.code == code
    assert "BytesIO" not in str(err.value)


def test_a_truncated_jpeg_is_truncated(provider, tmp_path):
    data = _scene(tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(EmbeddingFailed) as err:
        provider.embed_image(tmp_path / "cut.jpg")
    assert err.value.code == "TruncatedImage"


def test_a_directory_is_unreadable(provider, tmp_path):
    with pytest.raises(EmbeddingFailed) as err:
        provider.embed_image(tmp_path)
    assert err.value.code == "UnreadableImage"


def test_embed_images_reports_failures_per_image_and_carries_on(provider, tmp_path):
    good = _scene(tmp_path / "a.jpg")
    results = list(provider.embed_images([good, tmp_path / "missing.jpg", good]))
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error.code == "ImageNotFound"


# -- http(s) sources ---------------------------------------------------------------------------

@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path; yields its base URL."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_http_url_is_fetched_and_embeds_like_the_file(provider, tmp_path, http_root):
    path = _scene(tmp_path / "a.jpg")
    assert np.array_equal(provider.embed_image(f"{http_root}/a.jpg"), provider.embed_image(path))


def test_an_http_404_is_a_download_failure(provider, http_root):
    with pytest.raises(EmbeddingFailed, match="HTTP 404") as err:
        provider.embed_image(f"{http_root}/missing.jpg")
    assert err.value.code == "ImageDownloadFailed" and not err.value.retryable


# -- quality on real images --------------------------------------------------------------------

@pytest.mark.slow
def test_altered_copies_find_their_original_at_rank_1_in_95_percent(provider, real_gallery):
    files = sorted((real_gallery / "images").glob("*.jpg"))
    assert len(files) >= 600
    originals = transforms.unit_rows([provider.embed_image(f) for f in files])
    subset = range(0, len(files), 4)                    # 159 of the 634 images
    ranks = transforms.transform_ranks(provider, files, originals, subset)
    top1 = {name: float(np.mean(r == 0)) for name, r in ranks.items()}
    assert set(top1) == {"resize50", "crop90", "jpeg50", "colour"}
    assert all(share >= 0.95 for share in top1.values()), top1
