"""The optional `clip` provider, on a tiny randomly initialised CLIP built here.

The model (two-layer text and vision towers, 32x32 images, 64-d projection, a byte-level BPE
vocabulary of 516 tokens) is built from a CLIPConfig, saved with save_pretrained and loaded
back through ClipProvider exactly as a real checkpoint would be: no download, no mocks.
Skipped when torch or transformers is not installed
(pip install torch==2.13.0; pip install -e .[clip]).
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

# the extra is optional: say exactly what is missing. Looked up, not imported: importing
# torch takes seconds, and collecting the tests (pytest -m unit too) must not pay them.
for _name in ("torch", "transformers"):
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"the clip extra is not installed ({_name} missing): "
                    "pip install torch==2.13.0 && pip install -e .[clip]", allow_module_level=True)

from PIL import Image

from pgallery.config import Settings
from pgallery.database import connect
from pgallery.errors import ArgError, ConfigError, EmbeddingFailed
from pgallery.providers import get_provider, pad_to_column
from pgallery.providers.clip import DEFAULT_MODEL, ClipProvider, model_tag
from tiny_clip import PROJECTION_DIM, build_tiny_clip, install_in_hf_cache

@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny CLIP checkpoint directory: config, weights, preprocessor and tokenizer files."""
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def provider(tiny_clip_dir):
    with ClipProvider(tiny_clip_dir) as clip:
        yield clip


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Distinct real PNG/JPEG files: seeded noise, a gradient, a flat colour, and a copy."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    paths = {}
    for name in ("noise_a", "noise_b", "noise_c"):
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        paths[name] = folder / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    gradient = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[::-1, None], (1, 64)),
                         np.full((64, 64), 90, np.uint8)], axis=-1)
    paths["gradient"] = folder / "gradient.jpg"
    Image.fromarray(gradient).save(paths["gradient"], quality=95)
    paths["flat"] = folder / "flat.png"
    Image.new("RGB", (50, 30), (200, 30, 40)).save(paths["flat"])
    paths["noise_a_copy"] = folder / "copy_of_noise_a.png"
    shutil.copyfile(paths["noise_a"], paths["noise_a_copy"])
    paths["not_an_image"] = folder / "notes.png"
    paths["not_an_image"].write_text("this is text, not a PNG")
    return paths


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Exactly rounded cosine distance (float32 products are exact in float64; fsum sums
    them exactly), so padded and unpadded inputs must agree to the last bit."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    dot = math.fsum(a * b)
    return 1.0 - dot / (math.sqrt(math.fsum(a * a)) * math.sqrt(math.fsum(b * b)))


# -- loading ---------------------------------------------------------------------------------

def test_loads_a_saved_checkpoint_and_reports_its_true_dimension(provider):
    assert provider.name == "clip"
    assert provider.model == "clip/tiny-clip"
    assert provider.dimension == PROJECTION_DIM
    assert provider.supports_text is True


def test_get_provider_finds_the_model_through_pgallery_clip_model(tiny_clip_dir, monkeypatch,
                                                                  tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("PGALLERY_CLIP_MODEL", str(tiny_clip_dir))
    with get_provider("clip", Settings.load()) as clip:
        assert (clip.model, clip.dimension) == ("clip/tiny-clip", PROJECTION_DIM)


def test_a_missing_model_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no CLIP model directory"):
        ClipProvider(tmp_path / "no-such-model")


def test_a_directory_without_a_checkpoint_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="without a download"):
        ClipProvider(tmp_path)


# -- the default model, from the Hugging Face cache or not at all (never the real Hub) ------
#
# The Hub's client reads HF_HUB_CACHE, HF_ENDPOINT and HF_HUB_OFFLINE when it is imported,
# so these tests run the CLI in a process of its own with its own cache and an endpoint on a
# closed port: nothing can reach the internet.

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]     # closed again when the socket is


def _pgallery(args, cwd, **env):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("VISION_", "PGALLERY_", "HF_", "TRANSFORMERS_"))}
    base.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", COLUMNS="200",
                PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("cli")) or
                os.environ.get("PYTHONPATH", ""))
    base.update(env)
    result = subprocess.run([sys.executable, "-m", "pgallery", *args], cwd=cwd, env=base,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return result, output


@pytest.mark.slow
def test_with_nothing_configured_clip_uses_vit_b_32_from_the_hugging_face_cache(
        tiny_clip_dir, images, make_database, tmp_path):
    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_clip_dir, cache, DEFAULT_MODEL)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in ("noise_a", "gradient", "flat"):
        shutil.copy(images[name], folder / images[name].name)
    env = dict(DATABASE_URL=make_database(), HF_HUB_CACHE=str(cache))
    loaded, output = _pgallery(["load", "--folder", str(folder), "--provider", "clip"],
                               tmp_path, **env)
    assert loaded.returncode == 0, output
    assert "clip/openai/clip-vit-base-patch32" in output and "downloading" not in output
    found, output = _pgallery(["search", "text", "a red square", "--k", "2", "--json"],
                              tmp_path, **env)
    assert found.returncode == 0, output
    assert len(json.loads(found.stdout)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("offline", [False, True], ids=["unreachable-hub", "HF_HUB_OFFLINE"])
def test_with_an_empty_cache_and_no_hub_the_error_says_what_to_do(offline, make_database,
                                                                   tmp_path):
    env = dict(DATABASE_URL=make_database(), HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    result, output = _pgallery(["search", "text", "a boat", "--provider", "clip"],
                               tmp_path, **env)
    assert result.returncode == 2, output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines[0].startswith("Error: the CLIP model openai/clip-vit-base-patch32 is not in "
                               "the Hugging Face cache"), output
    assert "PGALLERY_CLIP_MODEL" in output
    assert ("unset it" in output) if offline else ("Connect to the internet" in output)
    assert not (tmp_path / "empty-cache").exists()      # nothing made for a failed fetch


def test_a_model_that_cannot_be_had_is_said_before_torch_is_loaded(tmp_path):
    # torch and transformers take seconds to import: the error should not wait for them
    code = ("import sys\n"
            "from pgallery.errors import ConfigError\n"
            "from pgallery.providers.clip import ClipProvider\n"
            "try:\n    ClipProvider('openai/clip-vit-base-patch32')\n"
            "except ConfigError as exc:\n    print('error:', exc)\n"
            "print('torch loaded:', 'torch' in sys.modules)\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
           "HF_HUB_CACHE": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "error: the CLIP model openai/clip-vit-base-patch32 is not in" in result.stdout, (
        result.stdout + result.stderr)
    assert "torch loaded: False" in result.stdout


def test_the_default_model_is_the_tutorials_vit_b_32(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PGALLERY_CLIP_MODEL", raising=False)
    assert DEFAULT_MODEL == "openai/clip-vit-base-patch32"
    assert model_tag(DEFAULT_MODEL) == "clip/openai/clip-vit-base-patch32"


def test_demo_with_clip_shows_text_search(tiny_clip_dir, make_database, monkeypatch,
                                          tmp_path):
    from typer.testing import CliRunner

    from pgallery.commands import app

    monkeypatch.setenv("DATABASE_URL", make_database())
    monkeypatch.setenv("PGALLERY_CLIP_MODEL", str(tiny_clip_dir))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--count", "20", "--provider", "clip",
                                      "--out", str(tmp_path / "demo")],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "text search 'a stormy sea at night', model clip/tiny-clip" in result.output
    assert "psql: SELECT * FROM search_by_text('a stormy sea at night'" in result.output
    assert (tmp_path / "demo" / "text.html").is_file()
    assert "pgallery demo --provider clip" not in result.output   # it is on already
    assert "keywords alone" not in result.output   # the hybrid search has its semantic half


def test_missing_transformers_is_a_config_error_with_the_install_commands(monkeypatch,
                                                                         tiny_clip_dir):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ConfigError) as error:
        ClipProvider.from_settings(Settings(clip_model_path=str(tiny_clip_dir)))
    message = str(error.value)
    assert "transformers" in message
    assert "pip install -e .[clip]" in message and "pip install torch==2.13.0" in message


# -- image vectors ---------------------------------------------------------------------------

def test_image_vectors_are_unit_float32_of_the_true_dimension(provider, images):
    vector = provider.embed_image(images["gradient"])
    assert vector.dtype == np.float32
    assert vector.shape == (PROJECTION_DIM,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_the_same_image_gives_identical_vectors_every_time(provider, images, tiny_clip_dir):
    first = provider.embed_image(images["noise_a"])
    assert np.array_equal(first, provider.embed_image(images["noise_a"]))
    assert np.array_equal(first, provider.embed_image(images["noise_a_copy"]))
    assert np.array_equal(first, provider.embed_image(str(images["noise_a"])))
    with ClipProvider(tiny_clip_dir) as reloaded:  # deterministic across loads too
        assert np.array_equal(first, reloaded.embed_image(images["noise_a"]))


def test_different_images_give_different_vectors(provider, images):
    names = ["noise_a", "noise_b", "noise_c", "gradient", "flat"]
    vectors = [provider.embed_image(images[n]) for n in names]
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert _cosine_distance(vectors[i], vectors[j]) > 1e-4, (names[i], names[j])


def test_a_missing_image_file_fails_that_image_only(provider, tmp_path):
    with pytest.raises(EmbeddingFailed) as error:
        provider.embed_image(tmp_path / "missing.jpg")
    assert error.value.code == "ImageNotFound"
    assert "missing.jpg" in str(error.value)


def test_a_file_that_is_not_an_image_fails_as_unreadable(provider, images):
    with pytest.raises(EmbeddingFailed) as error:
        provider.embed_image(images["not_an_image"])
    assert error.value.code == "UnreadableImage"


def test_batches_match_single_embeddings_keep_input_order_and_report_failures(
        provider, tiny_clip_dir, images, tmp_path):
    sources = [images["noise_a"], images["noise_b"], tmp_path / "gone.png", images["gradient"],
               images["not_an_image"], images["flat"], images["noise_c"]]
    seen = []
    with ClipProvider(tiny_clip_dir, batch_size=3) as small_batches:
        results = list(small_batches.embed_images(sources, on_result=seen.append))
    assert [r.source for r in results] == sources
    assert seen == results
    assert [r.ok for r in results] == [True, True, False, True, False, True, True]
    assert results[2].error.code == "ImageNotFound"
    assert results[4].error.code == "UnreadableImage"
    for result in results:
        if result.ok:
            single = provider.embed_image(result.source)
            np.testing.assert_allclose(result.vector, single, atol=1e-5)
            assert result.vector.dtype == np.float32


def test_an_image_url_gives_the_same_vector_as_the_file(provider, images):
    handler = partial(http.server.SimpleHTTPRequestHandler,
                      directory=str(images["noise_b"].parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        from_url = provider.embed_image(f"{base}/noise_b.png")
        assert np.array_equal(from_url, provider.embed_image(images["noise_b"]))
        with pytest.raises(EmbeddingFailed) as error:
            provider.embed_image(f"{base}/nothing-here.png")
        assert error.value.code == "ImageDownloadFailed" and "404" in str(error.value)
    finally:
        server.shutdown()
        server.server_close()


# -- text and combined vectors ---------------------------------------------------------------

def test_text_vectors_are_unit_deterministic_and_depend_on_the_words(provider):
    storm = provider.embed_text("a ship in a storm")
    assert storm.dtype == np.float32 and storm.shape == (PROJECTION_DIM,)
    assert np.linalg.norm(storm) == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(storm, provider.embed_text("a ship in a storm"))
    assert _cosine_distance(storm, provider.embed_text("the portrait of a lady")) > 1e-4


def test_text_longer_than_the_context_is_truncated_not_refused(provider):
    long_text = " ".join(["the"] * 500)
    assert np.linalg.norm(provider.embed_text(long_text)) == pytest.approx(1.0, abs=1e-6)


def test_empty_text_is_an_argument_error(provider):
    with pytest.raises(ArgError):
        provider.embed_text("   ")


def test_combined_query_is_the_normalised_average_of_text_and_image(provider, images):
    text = provider.embed_text("a red square")
    image = provider.embed_image(images["flat"])
    combined = provider.embed_combined("a red square", images["flat"])
    expected = (text + image) / np.linalg.norm(text + image)
    np.testing.assert_allclose(combined, expected, atol=1e-6)
    assert combined.dtype == np.float32
    assert np.linalg.norm(combined) == pytest.approx(1.0, abs=1e-6)
    # halfway between: as close to the text as to the image
    assert _cosine_distance(combined, text) == pytest.approx(_cosine_distance(combined, image),
                                                             abs=1e-6)


# -- padding to the 1024-d column ------------------------------------------------------------

def test_zero_padding_to_the_column_preserves_cosine_distances_exactly(provider, images):
    vectors = [provider.embed_image(images[n]) for n in ("noise_a", "noise_b", "gradient")]
    vectors.append(provider.embed_text("a ship in a storm"))
    padded = [pad_to_column(v) for v in vectors]
    for v, p in zip(vectors, padded):
        assert p.shape == (1024,) and p.dtype == np.float32
        assert np.array_equal(p[:PROJECTION_DIM], v) and not p[PROJECTION_DIM:].any()
    for i in range(len(vectors)):
        for j in range(len(vectors)):
            assert _cosine_distance(padded[i], padded[j]) == _cosine_distance(vectors[i],
                                                                              vectors[j])


# -- in the database -------------------------------------------------------------------------

def test_postgres_ranks_clip_vectors_like_numpy_cosine(provider, images, make_database):
    """64-d vectors stored zero-padded; a 64-d query is padded by search_by_vector."""
    names = ["noise_a", "noise_b", "noise_c", "gradient", "flat"]
    stored = {f"clip-test/{n}.png": provider.embed_image(images[n]) for n in names}
    query = provider.embed_combined("a red square", images["gradient"])
    expected = sorted(stored, key=lambda f: _cosine_distance(query, stored[f]))
    gaps = np.diff(sorted(_cosine_distance(query, v) for v in stored.values()))
    assert gaps.min() > 1e-5, "test data must not hold near-ties"

    conn = connect(make_database(), autocommit=True)
    try:
        conn.execute("SELECT register_model(%s, %s, 'clip')", (provider.model, provider.dimension))
        with conn.transaction():
            conn.execute("SELECT create_painting_staging()")
            with conn.cursor() as cur:
                with cur.copy("COPY painting_staging (ordinal, image_file, title, embedding) "
                              "FROM STDIN (FORMAT binary)") as copy:
                    copy.set_types(["int8", "text", "text", "vector"])
                    for ordinal, (image_file, vector) in enumerate(stored.items()):
                        copy.write_row((ordinal, image_file, image_file, pad_to_column(vector)))
                counts = cur.execute("SELECT * FROM merge_staged_paintings(%s)",
                                     (provider.model,)).fetchone()
        assert counts == (len(names), 0, len(names))
        assert conn.execute("SELECT dimension FROM embedding_model WHERE name = %s",
                            (provider.model,)).fetchone()[0] == PROJECTION_DIM

        literal = "[" + ",".join(repr(float(x)) for x in query) + "]"
        rows = conn.execute(
            "SELECT image_file, distance FROM search_by_vector(%s::vector, k => 10, "
            "model => %s, exact => true)", (literal, provider.model)).fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == expected
    for image_file, distance in rows:
        assert distance == pytest.approx(_cosine_distance(query, stored[image_file]), abs=1e-5)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_that_keeps_twice_the_models_side(tmp_path):
    from pgallery.providers.clip import load_image

    path = tmp_path / "large.jpg"
    Image.new("RGB", (4000, 3000), (200, 120, 40)).save(path, quality=90)
    reduced = load_image(path, side=224)
    assert min(reduced.size) >= 448 and reduced.size[0] < 4000       # 1/4: 1000 x 750
    assert reduced.mode == "RGB" and load_image(path).size == (4000, 3000)
    png = tmp_path / "large.png"                                       # only JPEG has scales
    Image.new("RGB", (1200, 900)).save(png)
    assert load_image(png, side=224).size == (1200, 900)
