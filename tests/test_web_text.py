"""`pgallery serve` with a model that reads text (Azure AI Vision's contract, served by the
fake Azure over real HTTP): prompts are embedded once and cached through the writer's
store_prompt_embedding, so psql's search_by_text answers them afterwards; an image and a
prompt combine; no secret reaches a page, a header or the log."""

from __future__ import annotations

import hashlib
import logging

import psycopg
import pytest
import requests

from fake_azure import FakeAzure
from pgallery.config import Settings
from pgallery.providers.azure import AzureVisionProvider
from pgallery.web import WebConfig
from web_server import load_sample_gallery, running_server


@pytest.fixture(scope="module")
def azure():
    with FakeAzure() as server:
        yield server


@pytest.fixture(scope="module")
def text_server(make_database, azure, tmp_path_factory):
    url = make_database(prefix="webtext")
    provider = AzureVisionProvider(azure.endpoint, azure.key, rate_limit=1000)
    directory = load_sample_gallery(url, tmp_path_factory.mktemp("web-azure"), count=20,
                                    provider=provider)
    provider.close()
    settings = Settings(database_url=url, vision_endpoint=azure.endpoint, vision_key=azure.key,
                        rate_limit=1000)
    with running_server(url, WebConfig(home=tmp_path_factory.mktemp("home")), settings) as (
            base, app):
        yield base, app, url, directory


def test_a_prompt_is_embedded_once_and_cached_for_psql(text_server, azure):
    base, _app, url, _ = text_server
    prompt = "a stormy sea with a lighthouse"
    before = azure.requests_for(text=prompt)
    first = requests.get(base + "/api/search", params={"text": prompt, "k": 5}, timeout=60)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["mode"] == "text" and body["model"] == "azure-vision/2023-04-15"
    assert len(body["results"]) == 5 and body["notices"] == []
    again = requests.get(base + "/api/search", params={"text": prompt, "k": 5}, timeout=60)
    assert [r["image_file"] for r in again.json()["results"]] == \
        [r["image_file"] for r in body["results"]]
    assert azure.requests_for(text=prompt) == before + 1
    with psycopg.connect(url) as conn:   # the cached prompt answers from SQL now
        rows = conn.execute("SELECT image_file FROM search_by_text(%s, k => 5)",
                            (prompt,)).fetchall()
    assert [r[0] for r in rows] == [r["image_file"] for r in body["results"]]


def test_an_image_and_a_prompt_combine(text_server):
    base, _app, _url, directory = text_server
    image = sorted((directory / "images").glob("*.jpg"))[0]
    data = image.read_bytes()
    alone = requests.post(base + "/api/search", files={"image": ("q.jpg", data)},
                          data={"k": "5"}, timeout=60).json()
    both = requests.post(base + "/api/search", files={"image": ("q.jpg", data)},
                         data={"k": "5", "text": "in winter"}, timeout=60).json()
    assert both["mode"] == "upload" and both["query"]["text"] == "in winter"
    assert both["notices"] == []
    assert alone["results"][0]["image_file"] == image.name   # its own vector first
    assert [r["similarity"] for r in both["results"]] != [r["similarity"] for r in
                                                          alone["results"]]
    digest = hashlib.sha256(data).hexdigest()
    permalink = requests.get(base + "/api/search", timeout=60,
                             params={"upload": digest, "text": "in winter", "k": 5}).json()
    assert [r["image_file"] for r in permalink["results"]] == \
        [r["image_file"] for r in both["results"]]


def test_no_secret_in_pages_headers_or_log(text_server, azure, caplog):
    base, _app, url, _ = text_server
    password = psycopg.conninfo.conninfo_to_dict(url)["password"]
    caplog.set_level(logging.DEBUG)
    seen = []
    for path in ("/", "/?text=portrait", "/api/search?text=portrait", "/api/filters",
                 "/api/search?k=0", "/nothing", "/api/paintings/none.jpg"):
        r = requests.get(base + path, timeout=60)
        seen.append(r.text)
        seen.extend(f"{k}: {v}" for k, v in r.headers.items())
    seen.append(caplog.text)
    for secret in (azure.key, password):
        assert all(secret not in text for text in seen)


def test_the_azure_provider_failing_is_a_clean_error(text_server, azure):
    from fake_azure import Fault

    base = text_server[0]
    azure.fail(Fault.status(401), text="the unreachable prompt", times=5)
    r = requests.get(base + "/api/search", params={"text": "the unreachable prompt"},
                     timeout=60)
    assert 400 <= r.status_code < 600 and r.status_code != 500
    assert set(r.json()) == {"error"} and azure.key not in r.text
    azure.clear_faults()
