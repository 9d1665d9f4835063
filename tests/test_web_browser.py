"""`pgallery serve` driven by a real headless Chromium (Debian's chromium + chromium-driver,
through Selenium): type a prompt, upload a file, apply a filter, open a result, click "more
like this", go back; every image on the way decodes, the URL alone reproduces the results,
the page fits a phone's width and the keyboard reaches the search box and the results.

Screenshots of each state are written to the artefacts directory ($PGALLERY_ARTEFACTS, or
tests/artefacts/web). The README's picture, docs/web-page.png, is taken here too, from the
demo's sample gallery: written when it is missing, or refreshed with
PGALLERY_UPDATE_DOCS=1 (so an ordinary test run leaves the work tree clean).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import browser
from pgallery.web import WebConfig
from web_server import load_sample_gallery, running_server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("PGALLERY_ARTEFACTS", ROOT / "tests" / "artefacts" / "web"))
README_SHOT = ROOT / "docs" / "web-page.png"
SHIP = "00015-shipwreck-on-a-rocky-coast.jpg"
WAIT = 60


@pytest.fixture(scope="module")
def site(make_database, tmp_path_factory):
    missing = browser.selenium_missing()
    if missing:
        pytest.skip(missing)
    url = make_database(prefix="webui")
    gallery = load_sample_gallery(url, tmp_path_factory.mktemp("webui-gallery"), count=120)
    with running_server(url, WebConfig(home=tmp_path_factory.mktemp("webui-home"))) as (
            base, _app):
        yield base, gallery


@pytest.fixture(scope="module")
def driver(site):
    with browser.webdriver(1280, 900) as d:
        yield d


def wait_for(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(lambda d: condition(d), message)


def loaded(driver):
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete",
             "the page did not finish loading")


def images_decode(driver) -> list[dict]:
    """Scroll every <img> into view (they load lazily), wait for all to finish, and return
    those that did not decode."""
    driver.execute_script("for (const i of document.images) i.loading = 'eager';")
    wait_for(driver, lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete)"), "images never finished")
    return driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
        ".map(i => i.src)")


def result_files(driver) -> list[str]:
    """The image_file of each result card, in order (from its painting link)."""
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('ol.grid li.card a.frame'))"
        ".map(a => a.getAttribute('href'))")
    return [requests.utils.unquote(urlsplit(h).path.split("/paintings/", 1)[1]) for h in hrefs]


def shot(driver, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def query_of(driver) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(driver.current_url).query).items()}


def csp_violations(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]]


def test_a_visitor_searches_uploads_filters_opens_and_goes_back(site, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    base, gallery = site
    driver.get(base + "/")
    loaded(driver)
    assert "pgallery" in driver.title
    assert images_decode(driver) == []
    shot(driver, "01-home")

    # 1. a prompt (the local model: the keyword ranking, said so)
    driver.find_element(By.TAG_NAME, "body").send_keys("/")
    focused = driver.switch_to.active_element
    assert focused.get_attribute("id") == "text"          # "/" focuses the search box
    focused.send_keys("stormy sea lighthouse", Keys.ENTER)
    wait_for(driver, lambda d: "text=stormy" in d.current_url, "the prompt was not searched")
    loaded(driver)
    assert query_of(driver)["text"] == "stormy sea lighthouse"
    assert "cannot read text" in driver.find_element(By.CSS_SELECTOR, ".notice").text
    assert result_files(driver) and images_decode(driver) == []
    shot(driver, "02-prompt")

    # 2. an image of one's own, from the file picker (searched at once)
    picture = gallery / "images" / SHIP
    driver.find_element(By.ID, "image").send_keys(str(picture))
    wait_for(driver, lambda d: "upload=" in d.current_url, "the upload did not search")
    loaded(driver)
    assert result_files(driver)[0] == SHIP                  # its own painting first
    assert images_decode(driver) == []
    shot(driver, "03-upload")

    # 3. a filter (type: chosen from the collection's values, applied at once)
    driver.find_element(By.CSS_SELECTOR, "details.more summary").click()
    Select(driver.find_element(By.NAME, "type")).select_by_visible_text("landscape")
    wait_for(driver, lambda d: "type=landscape" in d.current_url, "the filter was not applied")
    loaded(driver)
    assert "upload" in query_of(driver)                     # the query is kept
    metas = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "li.card .meta")]
    assert metas and all("landscape" in m for m in metas)
    filtered_url = driver.current_url
    filtered = result_files(driver)
    shot(driver, "04-filtered")

    # 4. open the second result: its page, large, with the filters in its link
    driver.find_elements(By.CSS_SELECTOR, "li.card a.frame")[1].click()
    wait_for(driver, lambda d: "/paintings/" in d.current_url, "the result did not open")
    loaded(driver)
    opened = requests.utils.unquote(urlsplit(driver.current_url).path.split("/paintings/")[1])
    assert opened == filtered[1]
    big = driver.find_element(By.CSS_SELECTOR, ".big img")
    assert driver.execute_script("return arguments[0].naturalWidth", big) > 0
    assert images_decode(driver) == []
    shot(driver, "05-painting")

    # 5. more like this, with the filter still applied
    driver.find_element(By.ID, "more-like-this").click()
    wait_for(driver, lambda d: "similar=" in d.current_url, "more like this did not search")
    loaded(driver)
    assert query_of(driver) == {"similar": opened, "type": "landscape"}
    similar = result_files(driver)
    assert similar and opened not in similar
    assert images_decode(driver) == []
    similar_url = driver.current_url
    shot(driver, "06-more-like-this")

    # 6. back, and back again: the same pages, the same results
    driver.back()
    wait_for(driver, lambda d: "/paintings/" in d.current_url, "back did not return")
    driver.back()
    wait_for(driver, lambda d: d.current_url == filtered_url, "back did not reach the results")
    loaded(driver)
    assert result_files(driver) == filtered

    # 7. the URL alone reproduces the results, in a fresh load and in the JSON twin
    driver.get(similar_url)
    loaded(driver)
    assert result_files(driver) == similar
    api = requests.get(base + "/api/search", params=query_of(driver), timeout=30).json()
    assert [r["image_file"] for r in api["results"]] == similar

    # 8. the keyboard reaches the results: Tab from the search box lands on a result link
    from selenium.webdriver.common.action_chains import ActionChains

    driver.find_element(By.ID, "text").click()
    reached = []
    for _ in range(25):   # key presses to the page (a file input would take them as a path)
        ActionChains(driver).send_keys(Keys.TAB).perform()
        reached.append(driver.switch_to.active_element.get_attribute("class") or "")
        if "frame" in reached[-1]:
            break
    assert "frame" in reached[-1], reached
    assert csp_violations(driver) == []


def test_the_page_fits_a_phone(site):
    base, _ = site
    with browser.webdriver(390, 844) as phone:
        phone.get(base + f"/?similar={SHIP}")
        loaded(phone)
        width = phone.execute_script("return document.documentElement.scrollWidth")
        assert width <= phone.execute_script("return window.innerWidth")
        assert images_decode(phone) == []
        shot(phone, "07-phone")


def test_the_readme_screenshot_from_the_demo_gallery(site, driver):
    base, _ = site
    driver.set_window_size(1280, 900)
    driver.get(base + f"/?similar={SHIP}&k=20")
    loaded(driver)
    assert images_decode(driver) == []
    driver.execute_script("window.scrollTo(0, 0)")
    path = shot(driver, "readme-web-page")
    if not README_SHOT.exists() or os.environ.get("PGALLERY_UPDATE_DOCS") == "1":
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOT)
    assert README_SHOT.stat().st_size > 10_000


def test_the_api_page_renders_every_operation_under_the_csp(site, driver):
    base, _ = site
    document = requests.get(base + "/api/openapi.json", timeout=30).json()
    driver.get_log("browser")                      # start from an empty console
    driver.get(base + "/api/docs")
    loaded(driver)
    wait_for(driver, lambda d: d.execute_script(
        "return document.querySelectorAll('section.op').length") > 0, "nothing rendered")
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('section.op h3'))"
        ".map(h => h.textContent.replace(/\\s+/g, ' ').trim())")
    expected = sorted(f"{method.upper()} {path}" for path, item in document["paths"].items()
                      for method in item)
    assert sorted(shown) == expected
    k_row = driver.execute_script(
        "return Array.from(document.querySelectorAll('#get_api_search tr'))"
        ".map(r => r.textContent).find(t => t.startsWith('k'))")
    assert "1 .. 200" in k_row
    assert csp_violations(driver) == []
    shot(driver, "api-docs")
