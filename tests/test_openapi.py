"""The OpenAPI document of `pgallery serve`: valid OpenAPI 3.1, built from the declarations
the routes validate with (so it cannot drift from them), describing every route; real
answers match it; the CLI's --json prints the API's result objects; /api/docs renders it
from pgallery's own files."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate
from starlette.routing import Route
from typer.testing import CliRunner

from pgallery.commands import app as cli
from pgallery.vocabulary import FILTERS, Param
from pgallery.web import WebConfig, create_app
from pgallery.web.openapi import document, operation
from pgallery.web.query import K_MAX, MAX_RANK, QUERY_PARAMS, UPLOAD_HASH
from web_server import load_sample_gallery, running_server

SHIP = "00015-shipwreck-on-a-rocky-coast.jpg"
LINKS = {"thumbnail_url", "image_url", "painting_url", "api_url"}


@pytest.fixture(scope="module")
def gallery(make_database, tmp_path_factory):
    url = make_database(prefix="openapi")
    load_sample_gallery(url, tmp_path_factory.mktemp("openapi-gallery"), count=30)
    return url


@pytest.fixture(scope="module")
def server(gallery, tmp_path_factory):
    with running_server(gallery, WebConfig(home=tmp_path_factory.mktemp("home"))) as (base,
                                                                                      app):
        yield base, app


@pytest.fixture(scope="module")
def spec(server):
    answer = requests.get(server[0] + "/api/openapi.json", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    return answer.json()


def parameters(spec, path, method="get") -> dict:
    return {p["name"]: p for p in spec["paths"][path][method].get("parameters", [])}


def schema_of(spec, name: str) -> dict:
    """A component schema with its references resolvable (for jsonschema)."""
    return {**spec["components"]["schemas"][name], "components": spec["components"]}


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    validate(spec)   # raises on any error of the document


def test_every_route_of_the_app_is_described(server, spec):
    app = server[1]
    for route in app.routes:
        if not isinstance(route, Route) or route.path.startswith("/static/"):
            continue
        path = re.sub(r"{(\w+)(?::\w+)?}", r"{\1}", route.path)
        described = spec["paths"][path]
        for method in route.methods - {"HEAD"}:
            operation_ = described[method.lower()]
            assert operation_["summary"] and operation_["responses"], (method, path)
    for path in ("/api/search", "/api/paintings/{image_file}", "/api/filters",
                 "/api/suggest", "/api/openapi.json", "/api/docs", "/", "/search"):
        assert path in spec["paths"]
    assert "post" in spec["paths"]["/api/search"]


def test_search_parameters_carry_the_limits_the_server_enforces(spec):
    params = parameters(spec, "/api/search")
    assert list(params) == [p.api for p in QUERY_PARAMS]
    assert params["k"]["schema"] == {"type": "integer", "minimum": 1, "maximum": K_MAX,
                                     "default": 20}
    assert params["page"]["schema"]["maximum"] == MAX_RANK
    assert re.fullmatch(params["upload"]["schema"]["pattern"].strip("^$"), "a" * 64)
    assert params["upload"]["schema"]["pattern"] == "^" + UPLOAD_HASH.pattern + "$"
    assert params["year_from"]["schema"]["minimum"] == -2**31
    for p in FILTERS:        # every filter of the vocabulary the web takes, no edit needed
        if p.web:
            assert params[p.api]["description"] == p.help
            if p.type is str:
                assert params[p.api]["schema"]["maxLength"] == 1000
    # the page takes what the API takes; the upload form the fields of a search
    assert list(parameters(spec, "/")) == list(params)
    form = spec["paths"]["/api/search"]["post"]["requestBody"]["content"]
    fields = form["multipart/form-data"]["schema"]["properties"]
    assert {"image", "image_url", "text", "k", "school"} <= set(fields)
    assert "similar" not in fields


def test_a_new_route_and_a_new_parameter_appear_without_editing_the_generator():
    colour = Param("colour", str, "A hex colour.", pattern="^#[0-9a-f]{6}$")

    @operation("GET", "Paintings of a colour", query=(colour,))
    async def by_colour(request):
        """unused"""

    async def undeclared(request):
        """Something another engineer added."""

    doc = document([Route("/api/colour", by_colour), Route("/api/thing/{name}", undeclared)])
    validate(doc)
    assert doc["paths"]["/api/colour"]["get"]["parameters"][0]["schema"] == {
        "type": "string", "pattern": "^#[0-9a-f]{6}$"}
    thing = doc["paths"]["/api/thing/{name}"]["get"]
    assert thing["summary"] == "Something another engineer added."
    assert thing["parameters"][0]["name"] == "name" and thing["parameters"][0]["required"]
    # answers it may give before someone declares them: any JSON, a pgallery error status
    assert thing["responses"]["200"]["content"]["application/json"]["schema"] == {}
    assert {"404", "422"} <= set(thing["responses"])


def test_a_real_search_answers_exactly_the_documented_shape(server, spec):
    answer = requests.get(server[0] + "/api/search", params={"similar": SHIP, "k": 4},
                          timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    jsonschema.validate(body, schema_of(spec, "SearchResponse"))
    assert len(body["results"]) == 4
    # the documented result fields are exactly the ones sent
    assert set(body["results"][0]) == set(spec["components"]["schemas"]["Result"]["required"])
    painting = requests.get(server[0] + body["results"][0]["api_url"], timeout=30).json()
    jsonschema.validate(painting, schema_of(spec, "Painting"))


def test_errors_have_the_documented_shape_and_status(server, spec):
    answer = requests.get(server[0] + "/api/search", params={"k": K_MAX + 1}, timeout=30)
    assert answer.status_code == 422
    assert "422" in spec["paths"]["/api/search"]["get"]["responses"]
    jsonschema.validate(answer.json(), schema_of(spec, "Error"))
    assert "k must be between 1 and 200" in answer.json()["error"]


def test_the_cli_json_prints_the_apis_result_objects(server, gallery, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", gallery)
    monkeypatch.delenv("VISION_ENDPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["search", "painting", SHIP, "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    api = requests.get(server[0] + "/api/search", params={"similar": SHIP, "k": 3},
                       timeout=30).json()["results"]
    assert printed == [{k: v for k, v in item.items() if k not in LINKS} for item in api]
    assert [r["rank"] for r in printed] == [1, 2, 3] and "type" in printed[0]


def test_the_api_page_is_served_from_pgallerys_own_files(server):
    page = requests.get(server[0] + "/api/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/api-docs.js" in sources and "/api/openapi.json" in sources
    assert not [s for s in sources if "//" in s]          # nothing from another host
    for asset in ("/static/api-docs.js", "/static/api-docs.css"):
        assert requests.get(server[0] + asset, timeout=30).status_code == 200


def test_the_document_is_built_from_the_routes_not_stored():
    doc = document(create_app("postgresql://unused/none").routes)
    validate(doc)
    assert set(doc["paths"]["/api/search"]) == {"get", "post"}
