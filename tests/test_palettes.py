"""Palettes: the dominant colours the loader computes from an image's pixels (five in CIE
Lab, with their shares), on pictures whose colours are known because Pillow drew them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from colour_gallery import COLOURS, picture
from pgallery.errors import ArgError, ImageNotFound, UnreadableImage
from pgallery.palette import (extract_palette, lab_to_hex, lab_to_srgb, parse_colours,
                              srgb_to_lab)


def delta_e(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))


def test_lab_of_known_colours_matches_the_cie_reference_values():
    # sRGB white is L*=100 a*=b*=0; pure red is (53.24, 80.09, 67.20) in CIE's D65 tables
    assert delta_e(srgb_to_lab([255, 255, 255]), [100, 0, 0]) < 0.01
    assert delta_e(srgb_to_lab([255, 0, 0]), [53.24, 80.09, 67.20]) < 0.05
    assert delta_e(srgb_to_lab([0, 0, 0]), [0, 0, 0]) < 0.01


def test_lab_and_back_gives_the_same_srgb_colour():
    rgb = np.random.default_rng(1).integers(0, 256, (200, 3))
    assert np.array_equal(lab_to_srgb(srgb_to_lab(rgb)), rgb)
    assert lab_to_hex(srgb_to_lab([30, 58, 138])) == "#1e3a8a"


def test_a_picture_of_one_colour_has_that_colour_alone():
    palette = extract_palette(Image.new("RGB", (40, 30), (212, 175, 55)))
    assert len(palette) == 1 and palette.shares[0] == pytest.approx(1)
    assert palette.hex() == ["#d4af37"]


def test_five_colours_come_back_with_their_shares_largest_first():
    parts = [("navy", 0.4), ("gold", 0.25), ("crimson", 0.15), ("ivory", 0.12),
             ("forest", 0.08)]
    palette = extract_palette(picture(parts, size=(60, 64)))   # clustered as it is
    assert len(palette) == 5
    assert list(palette.shares) == sorted(palette.shares, reverse=True)
    assert palette.shares.sum() == pytest.approx(1, abs=1e-6)
    for (name, share), lab, found in zip(parts, palette.lab, palette.shares):
        assert delta_e(lab, srgb_to_lab(COLOURS[name])) < 3, name
        assert found == pytest.approx(share, abs=0.02), name


def test_the_same_image_always_gives_the_same_palette():
    image = picture([("sky", 0.5), ("black", 0.3),
                     ("ivory", 0.2)], seed=4)
    data = io.BytesIO()
    image.save(data, format="JPEG", quality=90)
    first, second = extract_palette(data.getvalue()), extract_palette(data.getvalue())
    assert np.array_equal(first.lab, second.lab)
    assert np.array_equal(first.shares, second.shares)


def test_a_large_jpeg_is_read_at_a_reduced_scale_with_the_same_colours(tmp_path):
    path = tmp_path / "big.jpg"
    picture([("navy", 0.7), ("gold", 0.3)], size=(2400, 1800)).save(path, quality=90)
    palette = extract_palette(path)
    assert delta_e(palette.lab[0], srgb_to_lab(COLOURS["navy"])) < 3
    assert palette.shares[0] == pytest.approx(0.7, abs=0.03)


def test_an_unreadable_file_raises_the_intakes_typed_error(tmp_path):
    with pytest.raises(ImageNotFound):
        extract_palette(tmp_path / "missing.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(UnreadableImage):
        extract_palette(tmp_path / "text.jpg")


def test_colours_are_written_as_hex_with_optional_relative_weights():
    assert parse_colours(["#1E3A8A", "d4af37"]) == [("#1e3a8a", 0.5), ("#d4af37", 0.5)]
    assert parse_colours("#1e3a8a:3,#d4af37:1") == [("#1e3a8a", 0.75), ("#d4af37", 0.25)]
    assert parse_colours(["#abc"]) == [("#aabbcc", 1.0)]


@pytest.mark.parametrize("bad", [["blue"], ["#12345"], ["#1e3a8a:0"], ["#1e3a8a:x"], [],
                                 ["#000000"] * 6])
def test_anything_else_is_refused_in_one_line(bad):
    with pytest.raises(ArgError) as error:
        parse_colours(bad)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("command", [["search", "colour"], ["palettes"],
                                     ["palettes", "backfill"]], ids=" ".join)
def test_the_colour_commands_explain_themselves_with_an_example(command):
    from typer.testing import CliRunner

    from pgallery.commands import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    if len(command) == 2:
        assert "Example" in result.output
