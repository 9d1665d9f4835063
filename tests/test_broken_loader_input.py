"""Broken input to `pgallery load`, all in one collection as it happens in real life: every
good row is loaded and every bad one is reported with its reason, nothing is lost silently.

Bad rows and files: malformed CSV lines, a line in no known encoding, duplicate image_file
rows, a missing file, a corrupt file, a truncated JPEG, a zero-byte file; awkward but
valid images: over Azure's 20 MB, and over its 16,000 px side (the loader downscales those);
in a folder: a symlink loop next to the images.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from fake_azure import MAX_BYTES, FakeAzure
from gallery_files import embedded_files, make_image, rows, scalar, semart_row
from pgallery.commands import app

AZURE_MODEL = "azure-vision/2023-04-15"
HEADER = ["IMAGE_FILE", "DESCRIPTION", "AUTHOR", "TITLE", "TECHNIQUE", "DATE", "TYPE",
          "SCHOOL", "TIMEFRAME"]


@pytest.fixture(scope="module")
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture(scope="module")
def awkward_images(tmp_path_factory):
    """The expensive files, made once: a 20+ MB PNG, a 16,100 px wide PNG, a truncated
    JPEG (cut in the middle of its pixel data)."""
    root = tmp_path_factory.mktemp("awkward")
    noise = np.random.default_rng(1).integers(0, 256, (2700, 2700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "huge-bytes.png", compress_level=0)
    wide = Image.new("RGB", (16_100, 900), (30, 60, 120))
    ImageDraw.Draw(wide).rectangle((4000, 100, 9000, 700), fill=(240, 200, 40))
    wide.save(root / "wide-16100px.png")
    Image.fromarray(noise[:600, :800]).save(root / "whole.jpg", quality=95)
    data = (root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[:len(data) // 2])
    assert (root / "huge-bytes.png").stat().st_size > MAX_BYTES
    return root


def load(url, azure, *args):
    env = {**azure.env(), "DATABASE_URL": url, "VISION_RATE_LIMIT": "500", "COLUMNS": "200"}
    return CliRunner().invoke(app, ["load", *map(str, args)], env=env)


def failures(url) -> dict[str, str]:
    return dict(rows(url, "SELECT image_file, code FROM embedding_failure"))


def test_a_csv_with_every_kind_of_broken_row_loads_the_good_and_reports_the_bad(
        make_database, azure, awkward_images, tmp_path):
    url = make_database(prefix="broken")
    images = tmp_path / "Images"
    good = [make_image(images / f"good-{i}.jpg", i).name for i in range(3)]
    for name in ("huge-bytes.png", "wide-16100px.png", "truncated.jpg"):
        os.link(awkward_images / name, images / name)
    (images / "zero.jpg").write_bytes(b"")
    (images / "corrupt.jpg").write_bytes(os.urandom(5000))
    make_image(images / "dup.jpg", 50)

    def line(*values) -> bytes:
        return "\t".join(values).encode("utf-8")

    lines = [
        line(*HEADER),
        *(line(*semart_row(name, i)) for i, name in enumerate(good)),
        line(*semart_row("huge-bytes.png", 10)),
        line(*semart_row("wide-16100px.png", 11)),
        line(*semart_row("truncated.jpg", 12)),
        line(*semart_row("zero.jpg", 13)),
        line(*semart_row("corrupt.jpg", 14)),
        line(*semart_row("missing.jpg", 15)),
        line(*semart_row("dup.jpg", 16, TITLE="first")),
        line(*semart_row("dup.jpg", 17, TITLE="second")),
        b"only\ttwo",                                                  # malformed
        line(*semart_row("accent.jpg", 18, AUTHOR="DÜRER")).replace(    # cp1252 line
            "DÜRER".encode(), "DÜRER".encode("cp1252")),
        line(*semart_row("undecodable.jpg", 19)) + b"\x81\x8d",        # no encoding
        line(*semart_row("../outside.jpg", 20)),                        # path traversal
    ]
    make_image(images / "accent.jpg", 60)
    csv = tmp_path / "broken.csv"
    csv.write_bytes(b"\r\n".join(lines) + b"\r\n")

    result = load(url, azure, "--csv", csv, "--images", images)
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)

    loaded = good + ["accent.jpg", "dup.jpg", "huge-bytes.png", "wide-16100px.png"]
    assert embedded_files(url, AZURE_MODEL) == sorted(loaded)
    assert failures(url) == {"zero.jpg": "EmptyImage", "corrupt.jpg": "UnreadableImage",
                             "truncated.jpg": "TruncatedImage", "missing.jpg": "ImageNotFound"}
    # the duplicate's last row won, and the earlier one was reported
    assert scalar(url, "SELECT title FROM painting WHERE image_file = 'dup.jpg'") == "second"
    assert scalar(url, "SELECT author FROM painting WHERE image_file = 'accent.jpg'") == "DÜRER"
    output = " ".join(result.output.split())
    assert "dup.jpg" in output and "wins" in output
    for reason in ("EmptyImage", "UnreadableImage", "TruncatedImage", "ImageNotFound",
                   "expected 9", "neither UTF-8 nor cp1252", "outside the images directory"):
        assert reason in output, reason
    # nothing unaccounted for: 15 data lines = 8 loaded + 4 failed + 1 duplicate + 3 rejected
    assert len(loaded) + len(failures(url)) + 1 + 3 == len(lines) - 1
    # what reached Azure was within its limits (the big ones were downscaled, not refused)
    assert azure.status_counts[400] == 0


def test_a_folder_with_a_symlink_loop_and_broken_files_loads_the_good_ones(
        make_database, azure, awkward_images, tmp_path):
    url = make_database(prefix="brokendir")
    root = tmp_path / "pictures"
    make_image(root / "a.jpg", 1)
    make_image(root / "sub" / "b.jpg", 2)
    os.link(awkward_images / "wide-16100px.png", root / "sub" / "wide.png")
    (root / "sub" / "empty.jpg").write_bytes(b"")
    os.link(awkward_images / "truncated.jpg", root / "cut.jpg")
    os.symlink(root, root / "sub" / "back-to-top")
    os.symlink(root / "sub", root / "sub" / "self")
    result = load(url, azure, "--folder", root)
    assert result.exit_code == 0, result.output
    assert embedded_files(url, AZURE_MODEL) == ["a.jpg", "sub/b.jpg", "sub/wide.png"]
    assert failures(url) == {"sub/empty.jpg": "EmptyImage", "cut.jpg": "TruncatedImage"}
    output = " ".join(result.output.split())
    assert "EmptyImage" in output and "TruncatedImage" in output
