"""`pgallery serve` over real HTTP: every route, every error, traversal attempts, uploads
of every bad kind and hostile strings, against a real uvicorn on 127.0.0.1 and the
embedded PostgreSQL with the demo's procedural gallery embedded by the `local` provider."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
from PIL import Image

from pgallery.web import WebConfig
from web_server import load_sample_gallery, running_server, table_digest

SHIP = "00015-shipwreck-on-a-rocky-coast.jpg"
RESULT_KEYS = {"image_file", "title", "author", "technique", "type", "school", "timeframe",
               "date", "similarity", "thumbnail_url", "painting_url"}


@pytest.fixture(scope="module")
def gallery(make_database, tmp_path_factory):
    url = make_database(prefix="web")
    directory = load_sample_gallery(url, tmp_path_factory.mktemp("web-gallery"), count=40)
    return url, directory


@pytest.fixture(scope="module")
def server(gallery, tmp_path_factory):
    url, _ = gallery
    home = tmp_path_factory.mktemp("web-home")
    config = WebConfig(home=home, max_upload_bytes=2 * 1024 * 1024, max_pixels=4_000_000)
    with running_server(url, config) as (base, app):
        yield base, app, home


def get(server, path, **params):
    return requests.get(server[0] + path, params=params, timeout=30)


def raw_get(server, path: str) -> tuple[int, bytes]:
    """GET exactly this path, bytes as given (no client-side normalisation of ../ or %2F)."""
    host, port = urlsplit(server[0]).hostname, urlsplit(server[0]).port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def assert_error(response, status: int, *words: str):
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and body["error"]
    for word in words:
        assert word in body["error"]
    return body["error"]


def names(response) -> list[str]:
    return [r["image_file"] for r in response.json()["results"]]


def jpeg_of(gallery, image_file: str) -> bytes:
    return (gallery[1] / "images" / image_file).read_bytes()


# --- searches ------------------------------------------------------------------------------

def test_more_like_this_answers_the_contract_best_first(server):
    r = get(server, "/api/search", similar=SHIP, k=5)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model"] == "local-descriptors/v1" and body["mode"] == "image"
    assert body["query"]["similar"] == SHIP and body["query"]["k"] == 5
    results = body["results"]
    assert len(results) == 5 and SHIP not in names(r)
    assert all(RESULT_KEYS <= set(item) for item in results)
    similarities = [item["similarity"] for item in results]
    assert similarities == sorted(similarities, reverse=True)
    # the sample's second version of the shipwreck is found first (search_by_image's answer)
    assert "shipwreck" in results[0]["image_file"]
    assert results[0]["thumbnail_url"] == f"/thumbnails/{results[0]['image_file']}"


def test_the_page_and_its_json_twin_show_the_same_results(server):
    params = {"similar": SHIP, "type": "landscape", "k": "8"}
    page = get(server, "/", **params)
    api = get(server, "/api/search", **params)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    order = [item["painting_url"] for item in api.json()["results"]]
    assert order and all(item["type"] == "landscape" for item in api.json()["results"])
    positions = [page.text.find(f'href="{u.replace("&", "&amp;")}"') for u in order]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert 'rel="alternate" type="application/json"' in page.text
    # the painting links keep the filters: "more like this" from there stays filtered
    assert all("type=landscape" in u for u in order)


def test_text_with_the_local_model_is_the_keyword_ranking_and_says_so(server):
    api = get(server, "/api/search", text="stormy sea lighthouse", k=5).json()
    assert api["mode"] == "hybrid" and api["results"]
    assert any("cannot read text" in n for n in api["notices"])
    page = get(server, "/", text="stormy sea lighthouse")
    assert "cannot read text" in page.text and "search_hybrid" in page.text


def test_a_filter_that_matches_nothing_is_named(server):
    body = get(server, "/api/search", similar=SHIP, school="Atlantis").json()
    assert body["results"] == []
    assert "school contains 'Atlantis'" in body["empty_because"]
    page = get(server, "/", similar=SHIP, school="Atlantis")
    assert "School contains &#39;Atlantis&#39;" in page.text or "Atlantis" in page.text
    both = get(server, "/api/search", type="landscape", author="BRUEGHEL").json()
    if not both["results"]:
        assert "together" in both["empty_because"] or "matches no painting" in \
            both["empty_because"]
    alone = get(server, "/api/search", year_from=3000).json()
    assert alone["results"] == [] and "painted in or after '3000'" in alone["empty_because"]
    # browsing (no query) counts the whole collection, a search the model's paintings
    assert alone["empty_because"] == "painted in or after '3000' matches no painting"
    assert body["empty_because"].startswith("school contains 'Atlantis' matches no painting "
                                            "of local-descriptors/v1")


def test_pages_of_k_follow_each_other(server):
    ten = names(get(server, "/api/search", similar=SHIP, k=10))
    first = get(server, "/api/search", similar=SHIP, k=5).json()
    second = get(server, "/api/search", similar=SHIP, k=5, page=2).json()
    assert [r["image_file"] for r in first["results"] + second["results"]] == ten
    assert [r["rank"] for r in second["results"]] == [6, 7, 8, 9, 10]
    assert first["next_url"].endswith("page=2")
    page = get(server, "/", similar=SHIP, k=10)
    assert "Load more" in page.text and 'rel="next"' in page.text


def test_page_two_over_http_is_sqls_page_two(server, gallery):
    import psycopg

    with psycopg.connect(gallery[0]) as conn:
        def sql_page(function, query, **named):
            args = ", ".join(f"{name} => %({name})s" for name in named)
            return [r[0] for r in conn.execute(
                f"SELECT image_file FROM {function}(%(q)s, {args})", {"q": query, **named})]

        image = sql_page("search_by_image", SHIP, k=4, page=2)
        filtered = sql_page("search_by_image", SHIP, k=3, page=2, painting_type="landscape")
        keywords = sql_page("search_hybrid", "painted in oil on canvas", k=3, page=2)
    assert len(image) == 4 and len(filtered) == 3 and len(keywords) == 3
    assert names(get(server, "/api/search", similar=SHIP, k=4, page=2)) == image
    assert names(get(server, "/api/search", similar=SHIP, k=3, page=2,
                     type="landscape")) == filtered
    assert names(get(server, "/api/search", text="painted in oil on canvas", k=3,
                     page=2)) == keywords
    # browsing pages the collection the same way: two pages of 3 are the first 6
    six = names(get(server, "/api/search", type="portrait", k=6))
    assert names(get(server, "/api/search", type="portrait", k=3)) + names(
        get(server, "/api/search", type="portrait", k=3, page=2)) == six


def test_browse_lists_the_collection_by_filters_alone(server):
    body = get(server, "/api/search", type="portrait", k=50).json()
    assert body["mode"] == "browse" and body["results"]
    assert all(r["type"].lower() == "portrait" for r in body["results"])


def test_suggestions_and_choices_come_from_the_collection(server):
    choices = get(server, "/api/filters").json()
    assert "landscape" in choices["type"] and choices["timeframe"]
    authors = get(server, "/api/suggest", field="author", q="sal").json()["values"]
    assert authors and all("sal" in a.lower() for a in authors)
    wildcard = get(server, "/api/suggest", field="school", q="%").json()["values"]
    assert wildcard == []  # the % is a character, not a wildcard
    assert_error(get(server, "/api/suggest", field="description", q="a"), 422, "field")


# --- paintings and pictures -----------------------------------------------------------------

def test_a_painting_page_and_json(server):
    body = get(server, f"/api/paintings/{SHIP}").json()
    assert body["image_file"] == SHIP and body["title"] and body["description"]
    assert body["similar_url"].startswith("/api/search?similar=")
    page = get(server, f"/paintings/{SHIP}", school="italian")
    assert page.status_code == 200 and body["title"] in page.text
    assert 'id="more-like-this"' in page.text and "school=italian" in page.text
    assert_error(get(server, "/api/paintings/no-such.jpg"), 404, "no-such.jpg")
    missing = get(server, "/paintings/no-such.jpg")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_thumbnails_are_cached_on_disk_with_etags(server):
    r = get(server, f"/thumbnails/{SHIP}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(r.content)) as image:
        assert image.format == "JPEG" and max(image.size) <= 320
    etag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"]
    again = requests.get(server[0] + f"/thumbnails/{SHIP}", headers={"If-None-Match": etag},
                         timeout=30)
    assert again.status_code == 304 and not again.content
    cached = list((server[2] / "web-cache" / "thumbnails").rglob("*.jpg"))
    assert any(p.read_bytes() == r.content for p in cached)
    large = get(server, f"/images/{SHIP}")
    with Image.open(io.BytesIO(large.content)) as image:
        assert image.format == "JPEG" and image.size[0] > 0
    assert_error(get(server, "/thumbnails/no-such.jpg"), 404)


TRAVERSALS = [
    "/images/../../../../etc/passwd", "/images/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/images/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/images//etc/passwd", "/images/%2Fetc%2Fpasswd",
    "/thumbnails/..%2f..%2fsetup.py", "/thumbnails/%00", "/thumbnails/x%00.jpg",
    "/images/C:%5Cwindows%5Cwin.ini", "/static/..%2Fapp.py", "/static/%2e%2e/app.py",
    "/static/../web/app.py", "/uploads/..%2F..%2Fetc%2Fpasswd.jpg", "/uploads/%00.jpg",
    "/api/paintings/..%2F..%2Fetc%2Fpasswd", "/paintings/%2Fetc%2Fpasswd",
    "/thumbnails/file:%2F%2F%2Fetc%2Fpasswd", "/images/~root%2F.bashrc",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_from_a_request_reaches_the_file_system(server, path):
    status, body = raw_get(server, path)
    assert 400 <= status < 500
    assert b"root:" not in body and b"def create_app" not in body and b"[fonts]" not in body


# --- uploads --------------------------------------------------------------------------------

def test_an_upload_finds_its_original_and_keeps_a_permalink(server, gallery):
    data = jpeg_of(gallery, SHIP)
    r = requests.post(server[0] + "/api/search", files={"image": ("mine.jpg", data)},
                      data={"k": "5"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    digest = hashlib.sha256(data).hexdigest()
    assert body["mode"] == "upload" and body["query"]["upload"] == digest
    assert body["results"][0]["image_file"] == SHIP
    assert body["results"][0]["similarity"] > 0.99
    again = get(server, "/api/search", upload=digest, k=5)
    assert names(again) == names(r)
    page = get(server, "/", upload=digest)
    assert f"/uploads/{digest}.jpg" in page.text
    preview = get(server, f"/uploads/{digest}.jpg")
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
    # filters apply to an upload's query too
    filtered = get(server, "/api/search", upload=digest, type="portrait").json()
    assert all(item["type"] == "portrait" for item in filtered["results"])
    # what is kept: the client's name and the checked size (embedded from memory)
    kept = server[1].state.uploads.get(digest)
    with Image.open(io.BytesIO(data)) as original:
        assert (kept.name, (kept.width, kept.height)) == ("mine.jpg", original.size)


def test_an_upload_with_text_under_the_local_model_says_the_text_was_left_out(server, gallery):
    r = requests.post(server[0] + "/api/search", timeout=60,
                      files={"image": ("a.jpg", jpeg_of(gallery, SHIP))},
                      data={"text": "in winter"})
    assert r.status_code == 200
    assert any("left out" in n for n in r.json()["notices"])


def test_the_page_form_redirects_to_the_searchs_own_url(server, gallery):
    r = requests.post(server[0] + "/search", files={"image": ("a.jpg", jpeg_of(gallery, SHIP))},
                      data={"school": "italian", "text": ""}, allow_redirects=False, timeout=60)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/?upload=") and "school=italian" in location
    text = requests.post(server[0] + "/search", data={"text": "storm", "similar": SHIP},
                         allow_redirects=False, timeout=30)
    assert text.status_code == 303 and text.headers["location"] == "/?text=storm"
    keep = requests.post(server[0] + "/search", data={"similar": SHIP, "type": "landscape"},
                         allow_redirects=False, timeout=30)
    assert keep.headers["location"] == f"/?similar={quote(SHIP)}&type=landscape"


def _png(size, mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("payload,status,word", [
    (b"just some text, not an image", 415, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, 415, "not an image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415, "not an image"),
    (b"", 415, "empty"),
])
def test_uploads_that_are_not_images_are_refused(server, payload, status, word):
    r = requests.post(server[0] + "/api/search", files={"image": ("x.jpg", payload,
                                                                  "image/jpeg")}, timeout=30)
    assert_error(r, status, word)


def test_an_icon_is_an_image_of_a_refused_format(server):
    out = io.BytesIO()
    Image.new("RGB", (32, 32)).save(out, "ICO")
    assert_error(requests.post(server[0] + "/api/search", timeout=30,
                               files={"image": ("x.ico", out.getvalue())}), 415, "ICO")


def test_uploads_over_the_limits_are_refused(server):
    big = b"\xff\xd8" + b"\x00" * (3 * 1024 * 1024)
    assert_error(requests.post(server[0] + "/api/search", files={"image": ("b.jpg", big)},
                               timeout=30), 413, "limit")

    def chunks():  # no Content-Length: the cap applies while reading
        boundary = b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; " \
                   b"filename=\"b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        yield boundary
        for _ in range(40):
            yield b"\x00" * 100_000
        yield b"\r\n--xyz--\r\n"
    r = requests.post(server[0] + "/api/search", data=chunks(), timeout=30,
                      headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(r, 413, "limit")
    bomb = _png((4000, 4000), mode="1")   # 16 megapixels in a few kB; the limit here is 4
    assert len(bomb) < 100_000
    assert_error(requests.post(server[0] + "/api/search", files={"image": ("p.png", bomb)},
                               timeout=30), 413, "pixels")
    refused = (big, bomb)
    assert [server[1].state.uploads.peek(hashlib.sha256(p).hexdigest()) for p in refused] \
        == [None, None]


def test_post_without_an_image_and_other_form_mistakes(server, gallery):
    assert_error(requests.post(server[0] + "/api/search", data={"text": "x"}, timeout=30),
                 422, "image")
    two = requests.post(server[0] + "/api/search", timeout=30,
                        files={"image": ("a.jpg", jpeg_of(gallery, SHIP))},
                        data={"image_url": "https://example.org/a.jpg"})
    assert_error(two, 422, "not both")
    other = requests.post(server[0] + "/api/search", timeout=30,
                          files={"photo": ("a.jpg", jpeg_of(gallery, SHIP))})
    assert_error(other, 422, "photo")


@pytest.mark.parametrize("url,word", [
    ("http://127.0.0.1:1/a.jpg", "private or local"),
    ("http://localhost/a.jpg", "private or local"),
    ("http://169.254.169.254/latest/meta-data", "private or local"),
    ("http://[::1]/a.jpg", "private or local"),
    ("file:///etc/passwd", "http"),
    ("gopher://example.org/", "http"),
])
def test_image_urls_to_this_machine_or_other_schemes_are_refused(server, url, word):
    r = requests.post(server[0] + "/api/search", data={"image_url": url}, timeout=30)
    assert_error(r, 422, word)


def test_an_image_url_is_fetched_when_private_urls_are_allowed(gallery, tmp_path):
    """The same fetch against a local HTTP server (allowed by configuration here)."""
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler
    from functools import partial

    handler = partial(SimpleHTTPRequestHandler, directory=str(gallery[1] / "images"))
    images = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    config = WebConfig(home=tmp_path, allow_private_urls=True)
    try:
        with running_server(gallery[0], config) as (base, _app):
            url = f"http://127.0.0.1:{images.server_port}/{SHIP}"
            r = requests.post(base + "/api/search", data={"image_url": url, "k": "3"},
                              timeout=60)
            assert r.status_code == 200, r.text
            assert r.json()["results"][0]["image_file"] == SHIP
            missing = requests.post(base + "/api/search", timeout=60,
                                    data={"image_url": url + ".missing"})
            assert_error(missing, 422, "404")
    finally:
        images.shutdown()


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("params,status,word", [
    ({"k": "0"}, 422, "k must be"),
    ({"k": "201"}, 422, "k must be"),
    ({"k": "ten"}, 422, "whole number"),
    ({"k": "1e3"}, 422, "whole number"),
    ({"page": "0"}, 422, "page"),
    ({"k": "200", "page": "6"}, 422, "k x page"),
    ({"year_from": "abc"}, 422, "year_from"),
    ({"year_to": "99999999999"}, 422, "year_to"),
    ({"year_from": "1900", "year_to": "1800"}, 422, "after"),
    ({"upload": "../../etc/passwd"}, 422, "upload"),
    ({"upload": "0" * 64}, 404, "upload"),
    ({"similar": SHIP, "text": "sea"}, 422, "cannot be combined"),
    ({"similar": "no-such-painting.jpg"}, 404, "no-such-painting.jpg"),
    ({"text": "a\x00b"}, 422, "control character"),
    ({"school": "x" * 1001}, 422, "longer than"),
])
def test_bad_input_is_a_4xx_json_line(server, params, status, word):
    assert_error(get(server, "/api/search", **params), status, word)
    page = get(server, "/", **params)
    assert page.status_code == status and "text/html" in page.headers["content-type"]
    assert 'class="error-message"' in page.text


def test_unknown_routes_and_methods(server):
    assert_error(get(server, "/api/nothing"), 404)
    assert_error(requests.delete(server[0] + "/api/search", timeout=30), 405)
    page = requests.get(server[0] + "/nothing", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 404 and "<html" in page.text


def test_every_answer_carries_the_security_headers(server):
    for path in ("/", "/api/search?k=0", f"/thumbnails/{SHIP}", "/static/app.js", "/nothing"):
        r = get(server, path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "server" not in {k.lower() for k in r.headers}


def test_static_assets_are_served_by_pgallery(server):
    for path, kind in (("/static/app.js", "javascript"), ("/static/web.css", "css"),
                       ("/static/base.css", "css")):
        r = get(server, path)
        assert r.status_code == 200 and kind in r.headers["content-type"] and r.content
    page = get(server, "/").text
    assert "http://" not in page.split("<body>")[0] and "https://" not in page.split("<body>")[0]


HOSTILE = ["<script>alert(1)</script>", "'; DROP TABLE painting; --", "\" onmouseover=\"x",
           "%' OR 1=1 --", "\\", "_%", "😀" * 50, "../../etc/passwd", "{{7*7}}",
           "${jndi:ldap://x}", "\u202etxt.exe", "a" * 999, "NULL", "-1", "1 OR 1=1"]
PARAMS = ["text", "similar", "author", "technique", "school", "type", "timeframe",
          "year_from", "year_to", "k", "page", "upload"]


def test_hostile_strings_in_every_parameter_change_nothing(server, gallery):
    before = table_digest(gallery[0])
    for param in PARAMS:
        for value in HOSTILE:
            for path in ("/api/search", "/"):
                r = get(server, path, **{param: value})
                assert r.status_code < 500, (param, value, r.text[:200])
                if path == "/api/search" and r.status_code >= 400:
                    assert set(r.json()) == {"error"}
                if path == "/":   # shown escaped, if at all
                    assert "<script>alert" not in r.text and '" onmouseover' not in r.text
        form = requests.post(server[0] + "/search", data={param: HOSTILE[0]},
                             allow_redirects=False, timeout=30)
        assert form.status_code in (303, 404, 422), form.text[:200]
    for value in HOSTILE:
        for path in (f"/api/paintings/{quote(value, safe='')}", f"/paintings/{quote(value, safe='')}",
                     f"/thumbnails/{quote(value, safe='')}",
                     f"/api/suggest?field=author&q={quote(value)}"):
            r = requests.get(server[0] + path, timeout=30)
            assert r.status_code < 500, (path, r.text[:200])
    assert table_digest(gallery[0]) == before


def test_the_server_searches_as_pgallery_reader(server):
    import asyncio

    import psycopg

    app = server[1]
    assert app.state.db.reader_role == "pgallery_reader"

    async def check():   # on a connection of the server's own pool, on the server's loop
        async with app.state.db.connection() as conn:
            cur = await conn.execute("SELECT current_user")
            assert (await cur.fetchone())[0] == "pgallery_reader"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute("UPDATE painting SET title = 'x'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute("SELECT embedding FROM painting_embedding LIMIT 1")
    asyncio.run_coroutine_threadsafe(check(), app.state.loop).result(timeout=30)


def test_a_painting_without_a_vector_still_has_its_page(server, gallery):
    import psycopg

    with psycopg.connect(gallery[0], autocommit=True) as conn:
        conn.execute("INSERT INTO painting (image_file, title) VALUES ('no-vector.jpg', 'Bare')")
    try:
        page = get(server, "/paintings/no-vector.jpg")
        assert page.status_code == 200 and "Bare" in page.text
        assert "has no embedding" in page.text
        assert_error(get(server, "/api/search", similar="no-vector.jpg"), 404, "no embedding")
    finally:
        with psycopg.connect(gallery[0], autocommit=True) as conn:
            conn.execute("DELETE FROM painting WHERE image_file = 'no-vector.jpg'")


def test_an_upload_is_embedded_from_memory_and_no_file_is_written(gallery, tmp_path,
                                                                   monkeypatch):
    """The checked image goes to the provider as bytes: no temporary file, not even one
    that is deleted afterwards (the server's temporary directory stays empty)."""
    import tempfile

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    with running_server(gallery[0], WebConfig(home=tmp_path / "home")) as (base, app):
        r = requests.post(base + "/api/search", timeout=60,
                          files={"image": ("a.jpg", jpeg_of(gallery, SHIP))})
        assert r.status_code == 200 and r.json()["results"][0]["image_file"] == SHIP
        assert list(spool.iterdir()) == []
    assert list(spool.iterdir()) == []


def test_a_quiet_server_keeps_to_its_most_recent_connection(server):
    """Idle connections are handed out newest first: after a burst has opened several,
    requests one at a time all run on the same (warm) backend."""
    import asyncio

    db = server[1].state.db

    async def burst_then_one_at_a_time():
        async def hold():
            async with db.connection() as conn:
                await conn.execute("SELECT pg_sleep(0.2)")
        await asyncio.gather(*(hold() for _ in range(4)))
        pids = []
        for _ in range(10):
            async with db.connection() as conn:
                pids.append((await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0])
        return pids
    pids = asyncio.run_coroutine_threadsafe(burst_then_one_at_a_time(),
                                            server[1].state.loop).result(timeout=30)
    assert db.pool.get_stats()["pool_size"] >= 4
    assert len(set(pids)) == 1, pids
