"""The HTML results and painting pages: structure and escaping checked in Python, then the
page loaded from a file:// path in a real headless Chromium (after moving it away from the
pictures) to prove every thumbnail decodes and nothing is fetched."""

from __future__ import annotations

import base64
import io
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pgallery.errors import ArgError
from pgallery.rendering import thumbnails
from pgallery.rendering.html import (
    format_score,
    format_similarity,
    render_painting_page,
    render_results_page,
    write_painting_page,
    write_results_page,
)

HOSTILE = "<script>alert(1)</script>"
UNICODE_TITLE = "Café de Flore — «Ζωγραφική» № 3 ✓"
COLUMNS = ("painting_id", "image_file", "title", "author", "technique", "painting_type",
           "school", "timeframe", "date", "distance", "similarity", "score")


# --- test data: real JPEG files made with Pillow ---------------------------------------------

def make_picture(path: Path, size: tuple[int, int], hue: int, fmt: str = "JPEG",
                 mode: str = "RGB", exif_orientation: int | None = None) -> Path:
    """A small 'painting': a colour gradient with a sun and a horizon."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        shade = int(255 * y / max(height - 1, 1))
        draw.line([(0, y), (width, y)], fill=((hue + shade) % 256, (hue * 3) % 256, 255 - shade))
    draw.ellipse([width * 0.6, height * 0.15, width * 0.85, height * 0.45], fill=(250, 210, 90))
    draw.rectangle([0, height * 0.7, width, height], fill=(40, 70 + hue % 100, 50))
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(path, fmt, exif=exif)
    else:
        image.save(path, fmt)
    return path


def row(n: int, image_file: str | None, title: str | None, **extra) -> dict:
    base = dict.fromkeys(COLUMNS)
    similarity = round(0.95 - n * 0.031, 5)
    base.update(painting_id=n, image_file=image_file, title=title, author=f"Painter {n}",
                technique="oil on canvas", painting_type="landscape", school="French",
                timeframe="1851-1900", date=str(1850 + n), distance=1 - similarity,
                similarity=similarity, score=similarity)
    base.update(extra)
    return base


@pytest.fixture
def gallery(tmp_path):
    """Pictures on disk and search results pointing at them (one missing, one hostile title,
    one unicode title, one transparent PNG, one tiny picture that must not be enlarged)."""
    images = tmp_path / "images"
    make_picture(images / "wide.jpg", (900, 560), 10)
    make_picture(images / "tall.jpg", (400, 720), 90)
    make_picture(images / "tiny.jpg", (120, 90), 160)
    make_picture(images / "alpha.png", (500, 500), 200, fmt="PNG", mode="RGBA")
    make_picture(images / "unicode.jpg", (640, 480), 230)
    make_picture(images / "hostile.jpg", (300, 300), 40)
    results = [
        row(1, "wide.jpg", "A Wide Landscape"),
        row(2, "tall.jpg", "A Tall Portrait", similarity=0.87312, score=0.87312),
        row(3, "missing.jpg", "The Lost Painting"),
        row(4, "hostile.jpg", HOSTILE, author='"><img src=x onerror=alert(2)>'),
        row(5, "unicode.jpg", UNICODE_TITLE, author="Ōkyo Maruyama"),
        row(6, "tiny.jpg", None, author=None, date=None, school=None, painting_type=None),
        row(7, "alpha.png", "Transparent"),
    ]
    return images, results


def resolver_for(images: Path):
    return lambda image_file: images / image_file


class Page(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str, css: str | None = None) -> list[dict]:
        return [a for t, a in self.tags
                if t == tag and (css is None or css in (a.get("class") or "").split())]


def decode_data_uri(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


@pytest.fixture
def page(gallery):
    images, results = gallery
    text = render_results_page(
        results, title="More like this: A Wide Landscape", image_resolver=resolver_for(images),
        query={"mode": "image", "image_file": "wide.jpg", "k": 7, "model": "test-model",
               "filters": {"school": "French", "year_from": 1800, "author": None}})
    return text, Page(text)


# --- structure -------------------------------------------------------------------------------

def test_the_page_is_a_complete_html5_document_with_inline_css(page):
    text, parsed = page
    assert text.startswith("<!DOCTYPE html>")
    assert parsed.all("meta", None)[0] == {"charset": "utf-8"}
    assert parsed.all("style") and not parsed.all("link")
    assert "More like this: A Wide Landscape" in "".join(parsed.text)


def test_there_is_one_card_per_result_numbered_by_rank(page, gallery):
    _, results = gallery
    _, parsed = page
    assert len(parsed.all("li", "card")) == len(results)
    ranks = [d for d in parsed.text if d.isdigit() and len(d) == 1]
    assert ranks[:len(results)] == [str(i) for i in range(1, len(results) + 1)]


def test_thumbnails_are_embedded_jpeg_data_uris_of_at_most_256_pixels(page):
    _, parsed = page
    sources = [img["src"] for img in parsed.all("img")]
    # 6 readable pictures in the results + the query picture; the missing one has none
    assert len(sources) == 7
    sizes = [decode_data_uri(src).size for src in sources]
    assert all(max(size) <= 320 for size in sizes)
    card_sizes = sizes[1:]
    assert (256, 159) in card_sizes or (256, 160) in card_sizes   # 900x560 scaled down
    assert (142, 256) in card_sizes                               # 400x720 scaled down
    assert (120, 90) in card_sizes                                # tiny: never enlarged


def test_a_missing_picture_gets_a_placeholder_and_keeps_its_card(page):
    text, parsed = page
    placeholders = parsed.all("div", "placeholder")
    assert len(placeholders) == 1
    assert "image not found" in parsed.text
    assert "The Lost Painting" in parsed.text
    assert "missing.jpg" in parsed.text


def test_hostile_text_is_escaped_and_no_script_or_handler_reaches_the_page(page):
    text, parsed = page
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert HOSTILE in parsed.text                      # shown as text, verbatim
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert all(img["src"].startswith("data:image/jpeg;base64,") for img in parsed.all("img"))


def test_unicode_text_is_kept_as_is(page):
    text, parsed = page
    assert UNICODE_TITLE in parsed.text
    assert "Ōkyo Maruyama" in parsed.text


def test_nothing_on_the_page_is_loaded_from_outside(page):
    text, parsed = page
    for tag, attrs in parsed.tags:
        assert "src" not in attrs or attrs["src"].startswith("data:"), (tag, attrs)
        assert not attrs.get("href", "").startswith(("http:", "https:", "//"))
    assert "url(" not in text and "@import" not in text
    csp = [m["content"] for m in parsed.all("meta") if m.get("http-equiv")]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                   "base-uri 'none'; form-action 'none'"]


def test_local_pictures_link_to_the_full_file(page, gallery):
    images, _ = gallery
    _, parsed = page
    links = [a["href"] for a in parsed.all("a", "pic")]
    assert (images / "wide.jpg").resolve().as_uri() in links


def test_an_http_location_is_linked_not_embedded(gallery):
    _, results = gallery
    url = "https://example.org/images/wide.jpg?a=1&b=2"
    text = render_results_page(results[:1], query={"mode": "text", "prompt": "a sunset"},
                               title="t", image_resolver=lambda _f: url)
    parsed = Page(text)
    assert parsed.all("img") == []
    assert [a["href"] for a in parsed.all("a", "placeholder")] == [url]
    assert "open image ↗" in parsed.text


def test_no_location_gives_a_placeholder(gallery):
    _, results = gallery
    parsed = Page(render_results_page(results[:2], query={}, title="t",
                                      image_resolver=lambda _f: None))
    assert parsed.all("img") == []
    assert parsed.text.count("no image") == 2


def test_an_unreadable_file_gives_a_placeholder(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    parsed = Page(render_results_page([row(1, "broken.jpg", "Broken")], title="t",
                                      image_resolver=resolver_for(tmp_path)))
    assert parsed.all("img") == []
    assert "unreadable image" in parsed.text


def test_the_query_shows_mode_picture_filters_model_and_k(page):
    _, parsed = page
    text = parsed.text
    assert "More like this" in text
    assert "wide.jpg" in text
    assert len(parsed.all("a", "qpic")) == 1
    assert ["school", "French", "from year", "1800"] == [
        t for t in text if t in ("school", "French", "from year", "1800")][:4]
    assert "author" not in text                         # a None filter is not shown
    assert any("7 results" in t and "k = 7" in t and "model test-model" in t for t in text)


def test_a_text_search_shows_its_prompt_escaped_and_no_query_picture(gallery):
    images, results = gallery
    prompt = 'a storm at sea <b>"dramatic"</b> & waves'
    text = render_results_page(results, query={"mode": "text", "prompt": prompt},
                               title="Text search", image_resolver=resolver_for(images))
    parsed = Page(text)
    assert "Text search" in parsed.text
    assert prompt in parsed.text
    assert "<b>" not in text
    assert parsed.all("figure", "query-pic") == []
    assert "no filters" in parsed.text


def test_a_query_picture_outside_the_gallery_is_embedded(gallery, tmp_path):
    images, results = gallery
    query_file = make_picture(tmp_path / "elsewhere" / "mine.jpg", (300, 200), 70)
    parsed = Page(render_results_page(results[:1], query={"mode": "file",
                                                          "image_path": query_file},
                                      title="t", image_resolver=resolver_for(images)))
    assert len(parsed.all("a", "qpic")) == 1
    assert "mine.jpg" in parsed.text and "Similar to your image" in parsed.text


def test_a_file_uri_location_is_embedded_like_a_path(gallery):
    images, results = gallery
    parsed = Page(render_results_page(results[:1], title="t",
                                      image_resolver=lambda f: (images / f).as_uri()))
    assert len(parsed.all("img")) == 1


def test_similarity_is_shown_with_three_decimals_and_hybrid_score_separately(gallery):
    images, results = gallery
    hybrid = [dict(results[1], score=0.0325123)]
    parsed = Page(render_results_page(hybrid, query={"mode": "hybrid", "prompt": "x"},
                                      title="t", image_resolver=resolver_for(images)))
    assert "0.873" in parsed.text
    assert "0.0325" in parsed.text and "score" in parsed.text
    plain = Page(render_results_page(results[1:2], title="t",
                                     image_resolver=resolver_for(images)))
    assert "0.873" in plain.text and "score" not in plain.text


def test_the_web_and_the_static_page_draw_a_result_with_one_card(gallery):
    """Both front ends draw a result with the card of pgallery/templates/_macros.html: the
    same elements, classes and words, only the links differ (a data: thumbnail and the
    file here, the server's thumbnail and painting page there)."""
    from pgallery.rendering.templating import environment

    images, results = gallery
    static = Page(render_results_page(results[:1], image_resolver=resolver_for(images)))
    web_row = {"rank": 1, "image_file": "wide.jpg", "title": "A Wide Landscape",
               "author": "Painter 1", "date": "1851", "type": "landscape", "school": "French",
               "similarity": results[0]["similarity"], "score": results[0]["score"],
               "thumbnail_url": "/thumbnails/wide.jpg", "painting_url": "/paintings/wide.jpg"}
    web = Page(environment().get_template("_card.html").render(r=web_row))
    parts = ("card", "frame", "pic", "rank", "caption", "title", "author", "meta", "sim", "bar",
             "num")

    def drawn(page: Page) -> list[str]:
        return [c for _, attrs in page.tags for c in (attrs.get("class") or "").split()
                if c in parts or c.startswith("w")]

    def words(page: Page) -> list[str]:
        return [t for t in page.text if t in ("A Wide Landscape", "Painter 1", "0.919",
                                              "1851 · landscape · French", "1")]

    assert drawn(web) == drawn(static)[-len(drawn(web)):]          # after the query header
    assert drawn(web)[:3] == ["card", "frame", "pic"] and "w18" in drawn(web)
    assert words(web) == words(static)[-len(words(web)):] == [
        "1", "A Wide Landscape", "Painter 1", "1851 · landscape · French", "0.919"]
    assert [a["href"] for a in web.all("a", "frame")] == ["/paintings/wide.jpg"]
    assert [i["src"] for i in web.all("img")] == ["/thumbnails/wide.jpg"]


def test_number_formats():
    assert format_similarity(0.87312) == "0.873"
    assert format_similarity(None) == ""
    assert format_similarity(float("nan")) == ""
    assert format_score(0.0325123) == "0.0325"
    assert format_score(None) == ""


def test_rows_with_every_column_none_still_render(tmp_path):
    empty = dict.fromkeys(COLUMNS)
    parsed = Page(render_results_page([empty], title="t", image_resolver=lambda _f: None))
    assert len(parsed.all("li", "card")) == 1
    assert "Untitled" in parsed.text and "no image" in parsed.text


def test_no_results_says_so():
    parsed = Page(render_results_page([], query={"mode": "text", "prompt": "nothing"},
                                      title="t"))
    assert parsed.all("li", "card") == []
    assert "No paintings matched this search." in parsed.text
    assert any("0 results" in t for t in parsed.text)


def test_write_results_page_writes_utf8_and_returns_the_path(gallery, tmp_path):
    images, results = gallery
    target = tmp_path / "out" / "nested" / "results.html"
    with pytest.raises(ArgError, match="no such directory"):   # never made for the user
        write_results_page(target, results, query={"mode": "image"}, title="t")
    assert not (tmp_path / "out").exists()
    target.parent.mkdir(parents=True)
    written = write_results_page(target, results, query={"mode": "image"}, title="t",
                                 image_resolver=lambda f: str(images / f))   # str works too
    assert written == target
    text = target.read_text(encoding="utf-8")
    assert UNICODE_TITLE in text
    assert len(Page(text).all("img")) == 6


# --- thumbnails --------------------------------------------------------------------------------

def test_rendering_again_reuses_cached_thumbnails(gallery):
    images, results = gallery
    thumbnails.clear_cache()
    render_results_page(results, title="t", image_resolver=resolver_for(images))
    first = thumbnails.cache_info()
    render_results_page(results, title="t", image_resolver=resolver_for(images))
    second = thumbnails.cache_info()
    assert first["misses"] == 6 and first["hits"] == 0
    assert second["misses"] == 6 and second["hits"] == 6


def test_a_changed_file_gets_a_new_thumbnail(tmp_path):
    path = make_picture(tmp_path / "p.jpg", (400, 400), 10)
    before = thumbnails.thumbnail_jpeg(path)
    make_picture(path, (400, 200), 120)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    after = thumbnails.thumbnail_jpeg(path)
    assert Image.open(io.BytesIO(before)).size == (256, 256)
    assert Image.open(io.BytesIO(after)).size == (256, 128)


def test_thumbnails_follow_exif_orientation_and_flatten_transparency(tmp_path):
    rotated = make_picture(tmp_path / "r.jpg", (400, 200), 10, exif_orientation=6)
    assert Image.open(io.BytesIO(thumbnails.thumbnail_jpeg(rotated))).size == (128, 256)
    alpha = make_picture(tmp_path / "a.png", (300, 300), 10, fmt="PNG", mode="RGBA")
    assert Image.open(io.BytesIO(thumbnails.thumbnail_jpeg(alpha))).mode == "RGB"


def test_thumbnail_size_must_be_positive(tmp_path):
    with pytest.raises(ArgError):
        thumbnails.thumbnail_jpeg(tmp_path / "x.jpg", max_side=0)


# --- the painting page -------------------------------------------------------------------------

def test_the_painting_page_lists_metadata_and_embeds_a_large_picture(gallery):
    images, _ = gallery
    painting = row(1, "wide.jpg", HOSTILE, description="Sunset & hills", embedding=[0.1] * 8)
    text = render_painting_page(painting, resolver_for(images))
    parsed = Page(text)
    assert "<script" not in text.lower() and HOSTILE in parsed.text
    terms = [t for t in parsed.text if t in ("Title", "Author", "Date", "Technique", "Type",
                                             "School", "Timeframe", "Description",
                                             "Image file", "Painting id")]
    assert terms == ["Title", "Author", "Date", "Technique", "Type", "School", "Timeframe",
                     "Description", "Image file", "Painting id"]
    assert "Sunset & hills" in parsed.text
    assert "Embedding" not in parsed.text                  # vectors are not metadata
    (img,) = parsed.all("img")
    assert decode_data_uri(img["src"]).size == (900, 560)  # up to 1024 px: not shrunk


def test_write_painting_page_without_a_picture_shows_a_placeholder(tmp_path):
    target = write_painting_page(tmp_path / "p.html", row(2, "gone.jpg", "Gone"),
                                 lambda _f: None)
    parsed = Page(target.read_text(encoding="utf-8"))
    assert parsed.all("img") == [] and "no image" in parsed.text
    assert "Gone" in parsed.text


# --- in a real browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    import browser

    if browser.find_chromium() is None:
        pytest.skip("Chromium is not installed: run .ci/install-chromium.sh "
                    "(Debian's chromium package) to run the browser checks")
    return browser


@pytest.fixture(scope="module")
def moved_page(tmp_path_factory, chromium):
    """The results page written next to its pictures, then moved to another directory
    and the pictures deleted: whatever the browser shows must come from the page itself."""
    work = tmp_path_factory.mktemp("render")
    images = work / "images"
    made = {name: make_picture(images / name, size, hue) for name, size, hue in (
        ("wide.jpg", (900, 560), 10), ("tall.jpg", (400, 720), 90),
        ("tiny.jpg", (120, 90), 160), ("hostile.jpg", (300, 300), 40),
        ("unicode.jpg", (640, 480), 230))}
    results = [row(1, "wide.jpg", "A Wide Landscape"), row(2, "tall.jpg", "A Tall Portrait"),
               row(3, "missing.jpg", "The Lost Painting"), row(4, "hostile.jpg", HOSTILE),
               row(5, "unicode.jpg", UNICODE_TITLE), row(6, "tiny.jpg", "Tiny")]
    (work / "out").mkdir()
    written = write_results_page(work / "out" / "results.html", results,
                                 query={"mode": "image", "image_file": "wide.jpg",
                                        "filters": {"school": "French"}, "k": 6},
                                 title="More like this", image_resolver=resolver_for(images))
    elsewhere = tmp_path_factory.mktemp("moved") / "results.html"
    shutil.move(written, elsewhere)
    shutil.rmtree(images)
    assert not any(p.exists() for p in made.values())
    return elsewhere


@pytest.mark.browser
def test_in_chromium_every_thumbnail_decodes_and_nothing_is_fetched(moved_page, chromium):
    report = chromium.page_report(moved_page)
    assert report.title == "More like this"
    assert len(report.images) == 6                     # 5 results + the query picture
    assert report.broken == []
    assert all(i["naturalWidth"] > 0 and i["naturalHeight"] > 0 for i in report.images)
    assert {i["src"][:23] for i in report.images} == {"data:image/jpeg;base64,"}
    assert report.resources == []
    assert report.csp_violations == []
    assert report.scripts == 1                         # only the probe; the hostile title is text


@pytest.mark.browser
def test_in_chromium_the_page_renders_to_a_screenshot_of_the_asked_size(moved_page, chromium,
                                                                         tmp_path):
    png = chromium.screenshot(moved_page, tmp_path / "results.png", width=1280, height=900)
    assert png.stat().st_size > 10_000
    with Image.open(png) as shot:
        assert shot.format == "PNG" and shot.size == (1280, 900)
        colours = shot.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colours) > 2_000                        # the pictures are on it, not a blank page


@pytest.mark.browser
def test_in_chromium_the_painting_page_shows_its_picture(tmp_path, chromium):
    images = tmp_path / "images"
    make_picture(images / "tall.jpg", (400, 720), 90)
    page = write_painting_page(tmp_path / "painting.html", row(1, "tall.jpg", UNICODE_TITLE),
                               resolver_for(images))
    report = chromium.page_report(page)
    assert report.title == UNICODE_TITLE
    assert [(i["naturalWidth"], i["naturalHeight"]) for i in report.images] == [(400, 720)]
    assert report.csp_violations == [] and report.resources == []


@pytest.mark.browser
def test_the_browser_probe_catches_broken_images_and_blocked_loads(tmp_path, chromium):
    """The checks above can fail: a bad data: URI, a missing file, and a load that the
    page's Content-Security-Policy blocks are all reported."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title>"
                    '<meta http-equiv="Content-Security-Policy" content="img-src data:">'
                    '</head><body><img src="data:image/jpeg;base64,AAAA">'
                    '<img src="not-there.png"></body></html>', encoding="utf-8")
    report = chromium.page_report(page)
    assert len(report.images) == 2 and len(report.broken) == 2
    assert report.csp_violations == ["img-src file"]   # Chromium names only the scheme
