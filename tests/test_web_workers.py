"""What `pgallery serve --workers N` relies on between processes: uploads shared through
one directory, and a thumbnail cache that several processes may fill at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
from PIL import Image

from pgallery.demo import generate
from pgallery.web.config import WebConfig
from pgallery.web.thumbnail_cache import ThumbnailCache
from pgallery.web.uploads import UploadStore


def _png(seed: int) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_upload_made_by_one_worker_is_found_by_another(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    config = WebConfig(home=tmp_path, shared_uploads=shared, max_uploads_kept=3)
    one, other = UploadStore(config), UploadStore(config)
    embedded = []

    def embed(path: Path):
        embedded.append(path.name)
        return np.arange(8, dtype=np.float32) + len(embedded)
    try:
        first = one.add(_png(0), name="a.png", model="m", embed=embed)
        seen = other.get(first.digest)
        assert (seen.name, seen.model, seen.width, seen.height) == ("a.png", "m", 60, 40)
        assert np.array_equal(seen.vector, first.vector) and seen.preview == first.preview
        assert other.peek(first.digest) is not None
        for seed in (1, 2, 3):   # the directory keeps the newest max_uploads_kept
            one.add(_png(seed), name=f"{seed}.png", model="m", embed=embed)
        assert len(list(shared.glob("*.npz"))) == 3
        assert UploadStore(config).peek(first.digest) is None
        assert not list(shared.glob(".tmp-*"))
        assert other.peek("../" + "0" * 61) is None    # never a path from a request
    finally:
        one.close()
        other.close()


def _make_thumbnails(args):
    directory, images, rounds = args
    cache = ThumbnailCache(Path(directory))
    made = []
    for _ in range(rounds):
        for image in images:
            made.append(str(cache.get(image, 120)[0]))
    return made


def test_two_processes_filling_the_thumbnail_cache_at_once_leave_whole_files(tmp_path):
    generate(tmp_path / "gallery", count=6, seed=0)
    images = [str(p) for p in sorted((tmp_path / "gallery" / "images").iterdir())]
    cache = tmp_path / "cache"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        runs = pool.map(_make_thumbnails, [(str(cache), images, 3), (str(cache), images, 3)])
    assert runs[0] == runs[1]                      # the same file for the same picture
    files = sorted(cache.rglob("*.jpg"))
    assert len(files) == len(images)
    for path in files:
        with Image.open(path) as thumb:
            thumb.load()                           # whole, decodable
            assert max(thumb.size) <= 120
    assert not [p for p in cache.rglob("*") if p.name.startswith(".tmp-")]
