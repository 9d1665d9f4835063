"""`pgallery load` from images: a SemArt CSV with its images, a folder, failures and retries.

Real files written with Pillow, the real `azure` provider talking HTTP to the fake Azure
server (per-image request counters), the real `local` provider, and a real PostgreSQL
database per test. The CLI runs in-process.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from fake_azure import FakeAzure, vector_for_bytes
from gallery_files import (embedded_files, make_image, make_semart, rows, scalar, semart_row,
                           write_csv)
from pgallery.commands import app
from pgallery.database import connect
from pgallery.loading.folder import read_folder
from pgallery.loading.pipeline import load_images
from pgallery.loading.semart import read_semart_csv
from pgallery.providers.local import LocalDescriptorProvider

runner = CliRunner()
AZURE_MODEL = "azure-vision/2023-04-15"


@pytest.fixture
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture
def db(make_database, monkeypatch, tmp_path, azure):
    """A database of this test's own; the CLI pointed at it and at the fake Azure server."""
    url = make_database()
    monkeypatch.setenv("DATABASE_URL", url)
    for name, value in azure.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VISION_RATE_LIMIT", "200")
    monkeypatch.delenv("PGALLERY_PROVIDER", raising=False)
    monkeypatch.chdir(tmp_path)
    return url


def load(*args):
    return runner.invoke(app, ["load", *map(str, args)])


def stored_vector(url, image_file, model=AZURE_MODEL) -> np.ndarray:
    conn = connect(url, autocommit=True)
    try:
        vector = conn.execute(
            "SELECT e.embedding FROM painting p JOIN painting_embedding e USING (painting_id)"
            " WHERE p.image_file = %s AND e.model = %s", (image_file, model)).fetchone()[0]
        return np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector)
    finally:
        conn.close()


def failures(url):
    return dict(rows(url, "SELECT image_file, code FROM embedding_failure"))


# --- a SemArt CSV and its images -------------------------------------------------------

def test_csv_load_stores_every_painting_with_its_metadata_and_the_providers_vector(
        db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 6)
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert embedded_files(db, AZURE_MODEL) == sorted(p.name for p in paths)
    title, author, date, years = rows(
        db, "SELECT title, author, date, years::text FROM painting WHERE image_file = %s",
        (paths[2].name,))[0]
    assert (title, author, date, years) == ("Title 2", "PAINTER, Number 2", "1602",
                                            "[1602,1603)")
    np.testing.assert_allclose(stored_vector(db, paths[2].name)[:1024],
                               vector_for_bytes(paths[2].read_bytes()), rtol=1e-6)
    assert rows(db, "SELECT name, dimension, provider, is_active FROM embedding_model") == [
        (AZURE_MODEL, 1024, "azure", True)]
    assert all(azure.requests_for(p) == 1 for p in paths)
    assert "embeddings written" in result.output


def test_csv_images_default_to_the_images_directory_next_to_the_csv(db, tmp_path):
    csv, _, paths = make_semart(tmp_path, 2)
    result = load("--csv", csv)
    assert result.exit_code == 0, result.output
    assert len(embedded_files(db, AZURE_MODEL)) == 2


def test_rerun_asks_the_provider_for_nothing_and_duplicates_nothing(db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 5)
    assert load("--csv", csv, "--images", images).exit_code == 0
    azure.reset_counters()
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert azure.total_requests == 0
    assert scalar(db, "SELECT count(*) FROM painting") == 5
    assert scalar(db, "SELECT count(*) FROM painting_embedding") == 5
    assert re.search(r"unchanged \(skipped\)\s+5\b", result.output)


def test_changing_one_images_bytes_reembeds_only_that_image(db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 5)
    assert load("--csv", csv, "--images", images).exit_code == 0
    make_image(paths[3], seed=99)
    azure.reset_counters()
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert azure.total_requests == 1 and azure.requests_for(paths[3]) == 1
    np.testing.assert_allclose(stored_vector(db, paths[3].name)[:1024],
                               vector_for_bytes(paths[3].read_bytes()), rtol=1e-6)
    assert scalar(db, "SELECT count(*) FROM painting_embedding") == 5


def test_changed_metadata_is_updated_without_reembedding(db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 3)
    assert load("--csv", csv, "--images", images).exit_code == 0
    write_csv(csv, [semart_row(p.name, i, TITLE=f"Renamed {i}") for i, p in enumerate(paths)])
    azure.reset_counters()
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert azure.total_requests == 0
    assert [r[0] for r in rows(db, "SELECT title FROM painting ORDER BY image_file")] == [
        "Renamed 0", "Renamed 1", "Renamed 2"]


def test_missing_and_corrupt_images_are_reported_recorded_and_loaded_by_retry_failed(
        db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 4)
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    write_csv(csv, [semart_row(p.name, i) for i, p in enumerate(paths)]
              + [semart_row("missing.jpg", 7, TITLE="The Missing One"),
                 semart_row("corrupt.jpg", 8, TITLE="The Corrupt One")])
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert "ImageNotFound" in result.output and "corrupt.jpg" in result.output
    assert "--retry-failed" in result.output
    recorded = failures(db)
    assert recorded["missing.jpg"] == "ImageNotFound"
    assert recorded["corrupt.jpg"] in ("UnreadableImage", "TruncatedImage")
    assert len(embedded_files(db, AZURE_MODEL)) == 4
    # the metadata is kept for the retry
    assert scalar(db, "SELECT title FROM painting WHERE image_file = 'missing.jpg'") == \
        "The Missing One"

    make_image(images / "missing.jpg", seed=40)
    make_image(images / "corrupt.jpg", seed=41)
    azure.reset_counters()
    result = load("--retry-failed")
    assert result.exit_code == 0, result.output
    assert azure.total_requests == 2
    assert failures(db) == {}
    assert len(embedded_files(db, AZURE_MODEL)) == 6
    assert scalar(db, "SELECT title FROM painting WHERE image_file = 'corrupt.jpg'") == \
        "The Corrupt One"


def test_retry_failed_with_nothing_failed_embeds_nothing(db, azure, tmp_path):
    result = load("--retry-failed")
    assert result.exit_code == 0, result.output
    assert "no failed images to retry" in result.output
    assert azure.total_requests == 0


def test_duplicate_rows_in_one_csv_last_wins_with_a_warning(db, azure, tmp_path):
    csv, images, paths = make_semart(tmp_path, 3)
    write_csv(csv, [semart_row(paths[0].name, 0, TITLE="First"),
                    semart_row(paths[1].name, 1),
                    semart_row(paths[0].name, 0, TITLE="Second"),
                    semart_row(paths[2].name, 2)])
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert "duplicate" in result.output and "line 4 wins" in result.output
    assert scalar(db, "SELECT title FROM painting WHERE image_file = %s",
                  (paths[0].name,)) == "Second"
    assert scalar(db, "SELECT count(*) FROM painting") == 3
    assert azure.requests_for(paths[0]) == 1


def test_a_cp1252_csv_loads_its_accented_names(db, tmp_path):
    csv, images, paths = make_semart(tmp_path, 2)
    write_csv(csv, [semart_row(paths[0].name, 0, AUTHOR="DÜRER, Albrecht", TITLE="Café"),
                    semart_row(paths[1].name, 1, AUTHOR="GOYA Y LUCIENTES, Francisco de",
                               TITLE="Niño – “quoted”")], encoding="cp1252")
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT author, title FROM painting ORDER BY image_file") == [
        ("DÜRER, Albrecht", "Café"), ("GOYA Y LUCIENTES, Francisco de", "Niño – “quoted”")]


def test_malformed_rows_are_rejected_with_a_reason_and_good_rows_loaded(db, tmp_path):
    csv, images, paths = make_semart(tmp_path, 3)
    good = ["\t".join(semart_row(p.name, i)) for i, p in enumerate(paths)]
    lines = [
        "\t".join(["IMAGE_FILE", "DESCRIPTION", "AUTHOR", "TITLE", "TECHNIQUE", "DATE", "TYPE",
                   "SCHOOL", "TIMEFRAME"]).encode(),
        good[0].encode(),
        b"too\tfew\tfields",
        good[1].encode(),
        "\t".join(semart_row("bad-byte.jpg", 5)).encode() + b"\x81",
        "\t".join(semart_row("/etc/passwd", 6)).encode(),
        "\t".join(semart_row("nul.jpg", 7, TITLE="a\x00b")).encode(),
        "\t".join(semart_row("-", 8)).encode(),
        b"",
        good[2].encode(),
    ]
    csv.write_bytes(b"\n".join(lines) + b"\n")
    result = load("--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert len(embedded_files(db, AZURE_MODEL)) == 3
    listing = read_semart_csv(csv, images)
    reasons = {r.where: r.reason for r in listing.rejected}
    assert reasons["line 3"] == "3 tab-separated fields, expected 9"
    assert reasons["line 5"].startswith("neither UTF-8 nor cp1252")
    assert "absolute path" in reasons["line 6"]
    assert reasons["line 7"] == "holds a NUL character"
    assert reasons["line 8"] == "no IMAGE_FILE"
    assert len(listing.rejected) == 5
    assert "rejected" in result.output and "expected 9" in result.output


def test_a_csv_without_an_image_file_column_is_a_clear_error(db, tmp_path):
    csv = tmp_path / "notes.csv"
    csv.write_text("name,value\na,1\n")
    result = load("--csv", csv, "--images", tmp_path)
    assert result.exit_code == 2
    assert "no IMAGE_FILE column" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    ([], "say what to load"),
    (["--folder", ".", "--retry-failed"], "one thing at a time"),
    (["--folder", ".", "--model", "x/y"], "--model is for --embeddings"),
    (["--csv", "nowhere.csv", "--images", "."], "nowhere.csv: no such file"),
    (["--csv", "nowhere.csv"], "--images DIR"),
    (["--folder", "no-such-dir"], "no such directory"),
])
def test_bad_load_arguments_are_one_line_errors(cli_env, args, message):
    result = load(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- a folder of images ----------------------------------------------------------------

def test_folder_load_takes_titles_from_file_names_and_metadata_from_exif(db, azure, tmp_path):
    root = tmp_path / "pictures"
    make_image(root / "the_starry_night.jpg", 1,
               exif={0x013B: "Vincent van Gogh", 0x9003: "1889:06:15 10:00:00",
                     0x010E: "Swirling night sky over a village"})
    make_image(root / "nested" / "deeper" / "water-lilies.jpg", 2)
    (root / "README.txt").write_text("not an image")
    (root / "nested" / "thumbs.db").write_bytes(b"\x00" * 64)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = load("--folder", root)
    assert result.exit_code == 0, result.output
    assert embedded_files(db, AZURE_MODEL) == ["nested/deeper/water-lilies.jpg",
                                               "the_starry_night.jpg"]
    assert rows(db, "SELECT title, author, date, description, years::text FROM painting"
                    " WHERE image_file = 'the_starry_night.jpg'") == [
        ("the starry night", "Vincent van Gogh", "1889-06-15",
         "Swirling night sky over a village", "[1889,1890)")]
    assert scalar(db, "SELECT title FROM painting WHERE image_file LIKE 'nested/%%'") == \
        "water-lilies"
    # the unreadable image is reported and recorded; other files are skipped quietly
    assert "broken.png" in result.output
    assert "README" not in result.output and "thumbs" not in result.output
    assert list(failures(db)) == ["broken.png"]
    assert azure.total_requests == 2


def test_a_symlink_loop_in_a_folder_does_not_hang(tmp_path):
    root = tmp_path / "loop"
    make_image(root / "a.jpg", 1)
    make_image(root / "sub" / "b.jpg", 2)
    os.symlink(root, root / "sub" / "back-to-top")
    os.symlink(root / "sub", root / "sub" / "self")
    found = []
    walker = threading.Thread(target=lambda: found.append(read_folder(root)), daemon=True)
    walker.start()
    walker.join(timeout=20)
    assert not walker.is_alive(), "read_folder did not finish: the symlink loop was followed"
    assert sorted(i.record.image_file for i in found[0].items) == ["a.jpg", "sub/b.jpg"]


def test_folder_load_with_the_local_provider(db, tmp_path):
    root = tmp_path / "pictures"
    for i in range(3):
        make_image(root / f"p{i}.jpg", i, size=(64, 64))
    result = load("--folder", root, "--provider", "local")
    assert result.exit_code == 0, result.output
    assert len(embedded_files(db, "local-descriptors/v1")) == 3
    assert scalar(db, "SELECT provider FROM embedding_model") == "local"


def test_search_image_uses_the_provider_of_the_active_model(db, azure, tmp_path):
    # Azure is configured (the db fixture sets VISION_*), but the collection was embedded
    # with `local`: a new image must be embedded by `local` too, and Azure never asked
    root = tmp_path / "pictures"
    for i in range(3):
        make_image(root / f"p{i}.jpg", i, size=(64, 64))
    assert load("--folder", root, "--provider", "local").exit_code == 0
    result = runner.invoke(app, ["search", "image", str(root / "p1.jpg"), "--json", "--k", "1"])
    assert result.exit_code == 0, result.output
    assert '"p1.jpg"' in result.output
    assert azure.total_requests == 0
    # an explicit --provider of another model is still refused, not compared across models
    refused = runner.invoke(app, ["search", "image", str(root / "p1.jpg"), "--provider", "azure"])
    assert refused.exit_code != 0 and "never compared" in " ".join(refused.output.split())


# --- the engine, called as a library ---------------------------------------------------

class CountingLocalProvider(LocalDescriptorProvider):
    """The local provider, counting the images it is asked to embed."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def embed_image(self, source):
        self.calls += 1
        return super().embed_image(source)


def test_the_engine_skips_committed_images_by_content_hash(make_database, tmp_path):
    url = make_database()
    csv, images, paths = make_semart(tmp_path, 4)
    provider = CountingLocalProvider()
    conn = connect(url)
    try:
        first = load_images(conn, provider, read_semart_csv(csv, images), batch_size=3)
        assert (provider.calls, first.merged.embeddings, first.unchanged) == (4, 4, 0)
        stored = rows(url, "SELECT p.image_file, e.content_hash FROM painting p"
                           " JOIN painting_embedding e USING (painting_id) ORDER BY 1")
        assert stored == [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
        again = load_images(conn, provider, read_semart_csv(csv, images))
        assert (provider.calls, again.merged.embeddings, again.unchanged) == (4, 0, 4)
        assert again.ivfflat_rebuilt is False
    finally:
        conn.close()


def test_a_palette_is_computed_once_per_picture_not_again_for_another_model(db, tmp_path):
    folder = tmp_path / "pictures"
    paths = [make_image(folder / f"{i:02d}-picture.jpg", i) for i in range(4)]
    assert load("--folder", folder, "--provider", "local").exit_code == 0
    # a mark no palette computation gives, on the first picture's stored palette
    with connect(db, autocommit=True) as conn:
        conn.execute("UPDATE painting_palette SET lab = ARRAY[[50, 0, 0]]::real[],"
                     " shares = ARRAY[1]::real[] FROM painting p"
                     " WHERE p.painting_id = painting_palette.painting_id"
                     " AND p.image_file = %s", (paths[0].name,))
    make_image(paths[3], 99)                       # a picture replaced by other bytes

    second = load("--folder", folder, "--provider", "azure")   # a second model: all embedded
    assert second.exit_code == 0, second.output
    assert sorted(embedded_files(db, AZURE_MODEL)) == sorted(p.name for p in paths)
    palettes = dict(rows(db, "SELECT p.image_file, pp.shares FROM painting_palette pp"
                             " JOIN painting p USING (painting_id)"))
    assert palettes[paths[0].name] == [1.0]        # kept: the same bytes as before
    hashes = dict(rows(db, "SELECT p.image_file, pp.content_hash FROM painting_palette pp"
                           " JOIN painting p USING (painting_id)"))
    assert hashes[paths[3].name] == hashlib.sha256(paths[3].read_bytes()).hexdigest()
    assert len(palettes) == 4
