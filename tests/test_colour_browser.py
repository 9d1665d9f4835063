"""Search by colour in a real headless Chromium (Debian's chromium + chromium-driver,
through Selenium), on a gallery whose dominant colours are known (tests/colour_gallery.py,
loaded by the offline `local` provider, so the palettes are the loader's own): the colour
picker beside the prompt finds the paintings of the colour picked (at least 9 of the top
10), the swatches are painted under the server's Content-Security-Policy, and a click on a
painting's palette chip searches that colour.

The README's picture, docs/colour-search.png, is taken here: written when it is missing,
or refreshed with PGALLERY_UPDATE_DOCS=1 (so an ordinary run leaves the tree clean).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import browser
from colour_gallery import COLOURS, make_pictures
from pgallery import Gallery
from pgallery.web import WebConfig
from test_web_browser import csp_violations, images_decode, loaded, query_of, result_files
from test_web_browser import shot, wait_for
from web_server import running_server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
README_SHOT = ROOT / "docs" / "colour-search.png"


@pytest.fixture(scope="module")
def site(make_database, tmp_path_factory):
    missing = browser.selenium_missing()
    if missing:
        pytest.skip(missing)
    url = make_database(prefix="colourui")
    folder = tmp_path_factory.mktemp("colour-ui")
    make_pictures(folder, per_colour=12)
    with Gallery(url) as gallery:
        gallery.load_folder(folder, provider="local")
    with running_server(url, WebConfig(home=tmp_path_factory.mktemp("colourui-home"))) as (
            base, _app):
        yield base


@pytest.fixture(scope="module")
def driver(site):
    with browser.webdriver(1280, 900) as d:
        yield d


def pick(driver, hex_colour: str) -> None:
    """Choose a colour in the picker as a person does: its value set, then 'change'."""
    driver.execute_script(
        "const p = document.getElementById('colour-picker'); p.value = arguments[0];"
        "p.dispatchEvent(new Event('input', {bubbles: true}));"
        "p.dispatchEvent(new Event('change', {bubbles: true}));", hex_colour)


@pytest.mark.parametrize("name", ["navy", "gold", "crimson", "forest", "sky"])
def test_the_colour_picker_finds_the_paintings_of_that_colour(site, driver, name):
    driver.get(site + "/")
    loaded(driver)
    hex_colour = "#%02x%02x%02x" % COLOURS[name]
    pick(driver, hex_colour)
    wait_for(driver, lambda d: "colour=" in d.current_url, "the colour was not searched")
    loaded(driver)
    assert query_of(driver)["colour"] == hex_colour[1:]
    top = result_files(driver)[:10]
    assert len(top) == 10
    assert sum(f.startswith(f"col-{name}-") for f in top) >= 9, top
    # the colour asked is shown, painted by app.js (the policy allows no inline style)
    painted = driver.execute_script(
        "return getComputedStyle(document.querySelector('.asked .swatch')).backgroundColor")
    assert painted == "rgb(%d, %d, %d)" % COLOURS[name]
    assert images_decode(driver) == [] and csp_violations(driver) == []


def test_a_second_colour_picked_is_added_to_the_first(site, driver):
    driver.get(site + "/?colour=1e3a8a")
    loaded(driver)
    pick(driver, "#d4af37")
    wait_for(driver, lambda d: "d4af37" in d.current_url, "the second colour was not added")
    loaded(driver)
    assert query_of(driver)["colour"] == "1e3a8a,d4af37"
    top = result_files(driver)[:10]
    # navy-00 is the one picture drawn with both, navy first and gold second
    assert top[0] == "col-navy-00.jpg", top
    assert sum(f.startswith(("col-navy-", "col-gold-")) for f in top) >= 8, top


def test_a_palette_chip_searches_its_colour(site, driver):
    from selenium.webdriver.common.by import By

    driver.get(site + "/paintings/col-crimson-05.jpg")
    loaded(driver)
    chips = driver.find_elements(By.CSS_SELECTOR, ".palette a.chip")
    assert 2 <= len(chips) <= 5
    swatch = chips[0].find_element(By.CSS_SELECTOR, ".swatch")
    assert driver.execute_script("return getComputedStyle(arguments[0]).backgroundColor",
                                 swatch) not in ("rgba(0, 0, 0, 0)", "transparent")
    shot(driver, "colour-01-painting-palette")
    chips[0].click()
    wait_for(driver, lambda d: "colour=" in d.current_url, "the chip did not search")
    loaded(driver)
    top = result_files(driver)[:10]
    assert sum(f.startswith("col-crimson-") for f in top) >= 9, top
    assert csp_violations(driver) == []


@pytest.fixture(scope="module")
def demo_site(make_database, tmp_path_factory):
    """The demo's procedural gallery (what the README's other pictures show)."""
    from web_server import load_sample_gallery

    url = make_database(prefix="colourdemo")
    load_sample_gallery(url, tmp_path_factory.mktemp("colour-demo"), count=120)
    with running_server(url, WebConfig(home=tmp_path_factory.mktemp("colourdemo-home"))) as (
            base, _app):
        yield base


def test_the_readme_screenshot_of_a_colour_search(demo_site, driver):
    driver.set_window_size(1280, 900)
    driver.get(demo_site + "/?colour=1e3a8a,d4af37&k=20")
    loaded(driver)
    assert len(result_files(driver)) == 20 and images_decode(driver) == []
    driver.execute_script("window.scrollTo(0, 0)")
    path = shot(driver, "readme-colour-search")
    if not README_SHOT.exists() or os.environ.get("PGALLERY_UPDATE_DOCS") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOT)
    assert README_SHOT.stat().st_size > 10_000
