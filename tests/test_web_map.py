"""/explore and its JSON twin GET /api/map over real HTTP: the limit and the box hold, the
filters apply, bad input is a one-line client error (4xx); and in a real headless Chromium the map draws,
zooms (dots far out, pictures close in), shows a title on hover, opens the painting under
a click, and "Search here" runs more like this.

The README's picture of the map, docs/explore-page.png, is taken here from the demo's
sample gallery: written when missing, refreshed with PGALLERY_UPDATE_DOCS=1.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests

import browser
from pgallery.database import connect
from pgallery.web import WebConfig
from web_server import load_sample_gallery, running_server

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("PGALLERY_ARTEFACTS", ROOT / "tests" / "artefacts" / "web"))
README_SHOT = ROOT / "docs" / "explore-page.png"
COUNT = 120
WAIT = 60


@pytest.fixture(scope="module")
def site(make_database, tmp_path_factory):
    url = make_database(prefix="webmap")
    gallery = load_sample_gallery(url, tmp_path_factory.mktemp("webmap-gallery"), count=COUNT)
    with running_server(url, WebConfig(home=tmp_path_factory.mktemp("webmap-home"))) as (
            base, _app):
        yield base, url


def api(base: str, **params) -> requests.Response:
    return requests.get(base + "/api/map", params=params, timeout=30)


# --- the JSON API -----------------------------------------------------------------------------

def test_the_load_laid_out_the_map_and_the_api_returns_it(site):
    base, _ = site
    answer = api(base, limit=1000)
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["points"]) == COUNT and body["complete"] is True
    first = body["points"][0]
    assert set(first) >= {"image_file", "title", "x", "y", "thumbnail_url"}
    assert requests.get(base + first["thumbnail_url"], timeout=30).headers[
        "content-type"] == "image/jpeg"


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_a_viewport_never_returns_more_than_limit_points(site, limit):
    base, _ = site
    body = api(base, bbox="0,0,1,1", limit=limit).json()
    assert len(body["points"]) == limit and body["complete"] is False


def test_only_points_inside_the_box_come_back(site):
    base, url = site
    body = api(base, bbox="0.1,0.2,0.6,0.9", limit=5000).json()
    with connect(url, autocommit=True) as conn:
        inside = conn.execute("SELECT count(*) FROM painting_map WHERE x BETWEEN 0.1 AND 0.6"
                              " AND y BETWEEN 0.2 AND 0.9").fetchone()[0]
    assert len(body["points"]) == inside > 0
    assert all(0.1 <= p["x"] <= 0.6 and 0.2 <= p["y"] <= 0.9 for p in body["points"])


def test_the_filters_apply_to_the_map(site):
    base, url = site
    with connect(url, autocommit=True) as conn:
        kind, count = conn.execute("SELECT lower(painting_type), count(*) FROM painting"
                                   " GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    body = api(base, type=kind, limit=5000).json()
    assert len(body["points"]) == count < COUNT
    assert all(kind in p["painting_url"] for p in body["points"])   # links keep the filter


@pytest.mark.parametrize("params, message", [
    ({"bbox": "0,0,1"}, "bbox must be four numbers"),
    ({"bbox": "0,0,nan,1"}, "bbox must be four numbers"),
    ({"bbox": "0.5,0,0.4,1"}, "x0 <= x1"),
    ({"limit": "0"}, "limit must be between 1 and 5000"),
    ({"limit": "many"}, "limit must be a whole number"),
    ({"model": "no/such-model"}, "unknown embedding model"),
    ({"year_from": "1700", "year_to": "1600"}, "is after year_to"),
])
def test_bad_input_is_a_one_line_client_error(site, params, message):
    base, _ = site
    answer = api(base, **params)
    assert 400 <= answer.status_code < 500 and message in answer.json()["error"]
    assert "\n" not in answer.json()["error"]


def test_the_explore_page_links_its_data_and_its_script(site):
    base, _ = site
    page = requests.get(base + "/explore?school=dutch", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'data-api="/api/map?school=dutch"' in page.text
    assert '<script src="/static/explore.js" defer></script>' in page.text
    assert requests.get(base + "/static/explore.js", timeout=30).status_code == 200


# --- in a real browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver(site):
    missing = browser.selenium_missing()
    if missing:
        pytest.skip(missing)
    with browser.webdriver(1280, 900) as d:
        yield d


def wait_for(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(lambda d: condition(d), message)


def map_state(driver) -> dict:
    return driver.execute_script(
        "const m = window.pgalleryMap; return {requests: m.requests, mode: m.mode,"
        " drawn: m.screen.length, scale: m.view.scale, fit: m.fitScale,"
        " loaded: m.loaded, ready: document.getElementById('map').dataset.ready};")


def click_canvas_at(driver, x: float, y: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.find_element("id", "map")
    rect = canvas.rect
    # move_to_element_with_offset measures from the element's centre
    ActionChains(driver).move_to_element_with_offset(
        canvas, x - rect["width"] / 2, y - rect["height"] / 2).click().perform()


@pytest.mark.browser
def test_the_map_draws_zooms_and_a_click_opens_that_painting(site, driver):
    base, _ = site
    driver.get(base + "/explore")
    wait_for(driver, lambda d: map_state(d)["ready"] == "true", "the map never drew")
    first = map_state(driver)
    assert first["drawn"] == COUNT            # every painting fits the first screen
    assert first["mode"] == "dots"            # far out: dots
    ARTEFACTS.mkdir(parents=True, exist_ok=True)

    # zoom out: dots; zoom in: pictures, each request after the view changed
    driver.find_element("id", "zoom-out").click()
    wait_for(driver, lambda d: map_state(d)["requests"] > first["requests"],
             "zooming out asked for nothing")
    driver.find_element("id", "zoom-in").click()
    driver.find_element("id", "zoom-in").click()
    wait_for(driver, lambda d: map_state(d)["scale"] >= 1.9 * first["fit"]
             and map_state(d)["requests"] >= first["requests"] + 2, "zooming in did nothing")
    wait_for(driver, lambda d: map_state(d)["mode"] == "pictures"
             and map_state(d)["loaded"] > 0, "close in, no thumbnails were drawn")
    driver.save_screenshot(str(ARTEFACTS / "explore-zoomed.png"))

    # hover shows the title; a click opens that very painting
    target = driver.execute_script(
        "const s = window.pgalleryMap.screen, c = document.getElementById('map');"
        "const w = c.clientWidth, h = c.clientHeight;"
        "const d = s.filter(p => p.x > 40 && p.x < w - 200 && p.y > 60 && p.y < h - 40);"
        "d.sort((a, b) => Math.hypot(a.x - w / 2, a.y - h / 2) - Math.hypot(b.x - w / 2, b.y - h / 2));"
        "return d.length ? {x: d[0].x, y: d[0].y, file: d[0].point.image_file,"
        " title: d[0].point.title} : null;")
    assert target is not None, "no painting drawn away from the edges"
    from selenium.webdriver.common.action_chains import ActionChains
    canvas = driver.find_element("id", "map")
    ActionChains(driver).move_to_element_with_offset(
        canvas, target["x"] - canvas.rect["width"] / 2,
        target["y"] - canvas.rect["height"] / 2).perform()
    wait_for(driver, lambda d: d.find_element("id", "map-tip").text == target["title"],
             "hovering showed no title")
    click_canvas_at(driver, target["x"], target["y"])
    wait_for(driver, lambda d: "/paintings/" in d.current_url, "the click opened nothing")
    opened = unquote(urlsplit(driver.current_url).path.split("/paintings/", 1)[1])
    assert opened == target["file"]


@pytest.mark.browser
def test_search_here_runs_more_like_this_from_the_centre(site, driver):
    base, _ = site
    driver.get(base + "/explore")
    wait_for(driver, lambda d: map_state(d)["ready"] == "true", "the map never drew")
    centre = driver.execute_script(
        "const m = window.pgalleryMap; let best = null, bd = Infinity;"
        "for (const p of m.points) { const d = Math.hypot(p.x - m.view.cx, p.y - m.view.cy);"
        " if (d < bd) { bd = d; best = p; } } return best.image_file;")
    driver.find_element("id", "search-here").click()
    wait_for(driver, lambda d: "similar=" in d.current_url, "search here went nowhere")
    assert unquote(driver.current_url.split("similar=", 1)[1]) == centre
    cards = driver.find_elements("css selector", "ol.grid li.card")
    assert cards, "more like this found nothing"


@pytest.mark.browser
def test_the_readme_screenshot_of_the_map(site, driver):
    base, _ = site
    driver.get(base + "/explore")
    wait_for(driver, lambda d: map_state(d)["ready"] == "true", "the map never drew")
    driver.find_element("id", "zoom-in").click()
    wait_for(driver, lambda d: map_state(d)["mode"] == "pictures"
             and map_state(d)["loaded"] >= map_state(d)["drawn"],
             "the thumbnails did not load")
    path = ARTEFACTS / "explore.png"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    if not README_SHOT.exists() or os.environ.get("PGALLERY_UPDATE_DOCS") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOT)
    assert README_SHOT.stat().st_size > 10_000
