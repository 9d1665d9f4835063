"""The procedural sample gallery: SemArt's layout, real JPEGs, deterministic, and looking
meaningful to the local provider (a painting's nearest neighbour is by the same painter)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pgallery.errors import ArgError
from pgallery.providers.local import LocalDescriptorProvider
from pgallery.demo import COLUMNS, MARKER, PAINTERS, generate

COUNT = 120
SEMART_TYPES = {"religious", "portrait", "landscape", "mythological", "genre", "still-life",
                "historical", "interior", "study", "other"}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "gallery"
    csv_path = generate(out, count=COUNT, seed=7)
    return out, csv_path


@pytest.fixture(scope="module")
def table(gallery):
    return pd.read_csv(gallery[1], sep="\t", dtype=str, keep_default_na=False)


def _digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_csv_has_semarts_nine_columns_and_one_row_per_painting(gallery, table):
    out, csv_path = gallery
    assert csv_path == out / "semart.csv"
    assert tuple(table.columns) == COLUMNS == (
        "IMAGE_FILE", "DESCRIPTION", "AUTHOR", "TITLE", "TECHNIQUE", "DATE", "TYPE", "SCHOOL",
        "TIMEFRAME")
    assert len(table) == COUNT
    assert table.IMAGE_FILE.is_unique
    assert (table != "").all().all()


def test_metadata_values_follow_semarts_forms(table):
    assert table.AUTHOR.str.fullmatch(r"[A-Z][A-Z' ]+, [A-Z][a-z]+( [a-z]+)?").all()
    assert table.DATE.str.fullmatch(r"(c\. )?\d{4}|\d{4}-(\d{2}|\d{4})").all()  # 1630-35, 1898-1902
    assert table.TIMEFRAME.str.fullmatch(r"\d{2}[05]1-\d{2}[05]0").all()
    assert set(table.TYPE) <= SEMART_TYPES
    assert len(set(table.TYPE)) >= 6
    assert {"Italian", "Dutch", "Flemish", "French", "Spanish", "German"} <= set(table.SCHOOL)
    for date, frame in zip(table.DATE, table.TIMEFRAME):
        year = int(re.search(r"\d{4}", date).group())
        start, end = map(int, frame.split("-"))
        assert start <= year <= end and end - start == 49


def test_descriptions_name_what_is_painted(table):
    text = " ".join(table.DESCRIPTION).lower()
    for word in ("lighthouse", "portrait", "still life", "sky", "moon"):
        assert word in text
    assert table.DESCRIPTION.str.len().min() > 30


def test_every_image_file_exists_and_opens_as_a_small_jpeg(gallery, table):
    images = gallery[0] / "images"
    for name in table.IMAGE_FILE:
        with Image.open(images / name) as image:
            image.load()
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 200 <= max(image.size) <= 320


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    first, again, other = (tmp_path / name for name in ("first", "again", "other"))
    for out, seed in ((first, 7), (again, 7), (other, 8)):
        generate(out, count=24, seed=seed)
    assert _digest(again) == _digest(first)
    assert _digest(other) != _digest(first)


def test_a_second_call_with_the_same_arguments_keeps_the_files(tmp_path):
    out = tmp_path / "g"
    generate(out, count=12, seed=1)
    first = out / "images" / sorted(p.name for p in (out / "images").iterdir())[0]
    first.write_bytes(b"edited")          # a regeneration would overwrite this
    generate(out, count=12, seed=1)
    assert first.read_bytes() == b"edited"


def test_other_arguments_regenerate_and_drop_stale_images(tmp_path):
    out = tmp_path / "g"
    generate(out, count=20, seed=1)
    generate(out, count=10, seed=1)
    table = pd.read_csv(out / "semart.csv", sep="\t")
    assert len(table) == 10
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(table.IMAGE_FILE)


@pytest.mark.parametrize("count", [0, -3, 2.5])
def test_a_non_positive_count_is_an_arg_error(tmp_path, count):
    with pytest.raises(ArgError, match="count"):
        generate(tmp_path / "g", count=count)


def test_versions_and_studies_name_an_earlier_painting_by_the_same_painter(table):
    versions = table[table.TITLE.str.contains(r"\(second version\)$|^Study for ")]
    assert len(versions) >= COUNT // 20
    for _, row in versions.iterrows():
        base = re.sub(r"^Study for | \(second version\)$", "", row.TITLE)
        assert ((table.TITLE == base) & (table.AUTHOR == row.AUTHOR)).any(), row.TITLE


def test_nearest_neighbour_by_local_provider_is_mostly_by_the_same_painter(gallery, table):
    provider = LocalDescriptorProvider()
    images = gallery[0] / "images"
    vectors = np.stack([provider.embed_image(images / name) for name in table.IMAGE_FILE])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    authors = table.AUTHOR.to_numpy()
    same_painter = float(np.mean(authors[nearest] == authors))
    chance = 1 / len(PAINTERS)
    assert same_painter >= 0.8, same_painter          # chance is about 0.04
    assert same_painter > 10 * chance
    # a "second version" finds a painting of the same title and painter first
    titles = table.TITLE.str.replace(r"^Study for | \(second version\)$", "", regex=True)
    versions = np.flatnonzero(table.TITLE.str.endswith("(second version)"))
    hits = [titles[nearest[i]] == titles[i] and authors[nearest[i]] == authors[i]
            for i in versions]
    assert np.mean(hits) >= 0.75, hits
