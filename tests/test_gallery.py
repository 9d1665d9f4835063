"""pgallery as a Python library: `from pgallery import Gallery`, on a real embedded database
loaded through the library itself (the demo's sample gallery, the offline `local` model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pgallery import Gallery
from pgallery.demo import generate
from pgallery.errors import (ArgError, FilterError, InvalidVector, MismatchedDimension,
                             PaintingNotFound, PgalleryError, TextNotSupported)
from pgallery.vocabulary import RESULT_COLUMNS

MODEL = "local-descriptors/v1"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    where = tmp_path_factory.mktemp("sample")
    generate(where, count=24, seed=0)
    return where


@pytest.fixture(scope="module")
def gallery(make_database, sample, monkeypatch_module):
    url = make_database(migrate=False)
    seen = []
    with Gallery(url) as g:
        g.migrate()
        summary = g.load_semart(sample / "semart.csv", sample / "images", provider="local",
                                progress=lambda done, total: seen.append((done, total)))
        assert summary.merged.embeddings == 24
        assert seen[0] == (0, 24) and seen[-1] == (24, 24)
        yield g


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        for name in ("VISION_ENDPOINT", "VISION_KEY", "PGALLERY_PROVIDER",
                     "PGALLERY_CLIP_MODEL"):
            mp.delenv(name, raising=False)
        yield mp


def _files(gallery):
    return [row[0] for row in gallery.connection.execute(
        "SELECT image_file FROM painting ORDER BY image_file").fetchall()]


def test_more_like_a_painting_gives_typed_rows_best_first_without_the_painting_itself(gallery):
    query = _files(gallery)[0]
    results = gallery.search(similar=query, k=5)
    assert len(results) == 5 and results.kind == "image" and results.model == MODEL
    first = results[0]
    assert dataclasses.is_dataclass(first)
    assert [f.name for f in dataclasses.fields(first)] == [c.sql for c in RESULT_COLUMNS]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.title = "x"
    assert query not in [r.image_file for r in results]
    similarities = [r.similarity for r in results]
    assert similarities == sorted(similarities, reverse=True)
    # the same ranking as the SQL function itself
    sql = gallery.connection.execute(
        "SELECT image_file FROM search_by_image(%s, k => 5)", (query,)).fetchall()
    gallery.connection.rollback()
    assert [r.image_file for r in results] == [r[0] for r in sql]


def test_filters_take_the_api_names_and_every_row_passes_them(gallery):
    results = gallery.search(similar=_files(gallery)[0], k=24, type="landscape")
    assert results and all(r.painting_type.lower() == "landscape" for r in results)


def test_a_stored_vector_finds_its_own_painting_first(gallery):
    query = _files(gallery)[3]
    vector = gallery.connection.execute(
        "SELECT e.embedding FROM painting_embedding e JOIN painting p USING (painting_id)"
        " WHERE p.image_file = %s", (query,)).fetchone()[0]
    gallery.connection.rollback()
    results = gallery.search(vector=vector, k=3)     # a pgvector Vector, as read
    assert results.kind == "vector" and results[0].image_file == query
    assert results[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_a_new_image_as_a_path_or_as_bytes_gives_the_same_ranking(gallery, sample):
    path = sorted((sample / "images").iterdir())[0]
    by_path = gallery.search(image=str(path), k=4)
    by_bytes = gallery.search(image=path.read_bytes(), k=4)
    assert [r.image_file for r in by_path] == [r.image_file for r in by_bytes]
    assert by_path[0].image_file == path.name      # the painting made from that very file


def test_text_on_an_image_only_model_is_the_keyword_ranking_and_says_so(gallery):
    title = gallery.connection.execute("SELECT title FROM painting ORDER BY image_file"
                                       " LIMIT 1").fetchone()[0]
    gallery.connection.rollback()
    results = gallery.search(text=title, k=3)
    assert results.kind == "hybrid" and results
    assert any("ranked by keywords only" in n and "cannot read text" in n
               for n in results.notices)


def test_a_composed_query_calls_search_combined(gallery):
    a, b = _files(gallery)[:2]
    results = gallery.search(query=f"@{a} + @{b}", k=5)
    assert results.kind == "combined" and len(results) == 5
    assert {a, b}.isdisjoint(r.image_file for r in results)


def test_no_query_lists_the_collection_under_the_filters(gallery):
    everything = gallery.search(k=100)
    assert everything.kind == "browse" and len(everything) == 24 and not everything.more
    page = gallery.search(k=10, page=2)
    assert [r.image_file for r in page] == [r.image_file for r in everything][10:20]


def test_an_empty_filtered_search_names_the_filter_that_left_nothing(gallery):
    results = gallery.search(similar=_files(gallery)[0], school="Atlantis", type="landscape")
    assert len(results) == 0
    assert results.empty is not None
    counts = {c.param.api: c.count for c in results.empty.counts}
    assert counts["school"] == 0 and counts["type"] > 0
    assert results.empty_because.startswith("school contains 'Atlantis' matches no painting "
                                            f"of {MODEL}")
    assert gallery.search(similar=_files(gallery)[0]).empty is None


def test_bad_input_raises_typed_errors_never_a_bare_exception(gallery):
    with pytest.raises(ArgError, match="unknown search parameter 'flavour'"):
        gallery.search(text="x", flavour="red")
    with pytest.raises(ArgError, match="not colour and text"):
        gallery.search(text="x", colour="#1e3a8a")
    with pytest.raises(FilterError, match="k must be between 1 and 10000"):
        gallery.search(similar="x", k=0)
    with pytest.raises(FilterError, match="year_from .* after year_to"):
        gallery.search(year_from=1700, year_to=1600)
    with pytest.raises(FilterError, match="order must be one of"):
        gallery.search(similar=_files(gallery)[0], order="colour")
    with pytest.raises(MismatchedDimension):
        gallery.search(vector=[0.1, 0.2, 0.3])
    with pytest.raises(InvalidVector):
        gallery.search(vector=[0.0] * 1024)
    with pytest.raises(PaintingNotFound):
        gallery.search(similar="no-such-painting.jpg")
    with pytest.raises(ArgError, match="not similar and vector"):
        gallery.search(similar="a.jpg", vector=[1.0])
    with pytest.raises(ArgError, match="no such file"):
        gallery.search(image="/no/such/file.jpg")
    with pytest.raises(ArgError, match="text must be text"):
        gallery.search(text=42)
    with pytest.raises(ArgError, match="the vector must be"):
        gallery.search(vector="not a vector")
    with pytest.raises(FilterError, match="author must be text"):
        gallery.search(author=3)
    with pytest.raises(PaintingNotFound):
        gallery.painting("no-such-painting.jpg")


def test_text_with_the_strict_fallback_off_is_the_providers_own_error(gallery):
    from pgallery.flow import SearchParams

    with pytest.raises(TextNotSupported, match="embeds images only"):
        gallery.run(SearchParams(text="an unseen prompt", fallback=False))


def test_painting_models_duplicates_and_the_index_status(gallery):
    image_file = _files(gallery)[0]
    painting = gallery.painting(image_file)
    assert painting["image_file"] == image_file and painting["embedded_with"] == [MODEL]
    models = gallery.models()
    assert [(m["name"], m["active"], m["vectors"]) for m in models] == [(MODEL, True, 24)]
    gallery.use_model(MODEL)
    assert gallery.model().name == MODEL and gallery.model().supports_text is False
    groups = gallery.duplicates()
    assert all(d.similarity <= 1.0 for d in groups)
    assert [d.group_id for d in groups] == sorted(d.group_id for d in groups)
    with pytest.raises(PgalleryError):
        gallery.use_model("no/such-model")
    assert isinstance(gallery.index_status(), list)


def test_a_search_is_exactly_one_call_of_a_sql_search_function(gallery):
    """The flow decides; the SQL ranks, once. Driven here on the library's own connection,
    every operation recorded (a prompt on an image-only model: model, then the fallback)."""
    from pgallery import flow
    from pgallery.flow import Fetch, SearchParams

    conn = gallery.connection
    for params in (SearchParams(similar=_files(gallery)[0], k=3),
                   SearchParams(text="a harbour at dusk", k=3),
                   SearchParams(query=f"@{_files(gallery)[1]}", k=3)):
        steps, statements, answer = flow.search(params, gallery.state), [], None
        try:
            while True:
                op = steps.send(answer)
                assert type(op) is Fetch           # the local model: nothing to embed
                statements.append(op.statement)
                answer = flow.fetch(conn, op)
        except StopIteration as stop:
            outcome = stop.value
        searches = [s for s in statements if s.startswith("SELECT * FROM search_")]
        assert len(searches) == 1 and len(outcome.rows) == 3, statements


def test_the_web_and_the_library_answer_a_search_alike(gallery, tmp_path):
    """One flow, two drivers: /api/search (asyncio, on a pool) and Gallery.search (one
    connection) give the same rows, notices and explanation."""
    import requests

    from pgallery.web import WebConfig
    from web_server import running_server

    query = _files(gallery)[2]
    with running_server(gallery.url, WebConfig(home=tmp_path)) as (base, _):
        def api(**params):
            return requests.get(base + "/api/search", params=params, timeout=30).json()

        web = api(similar=query, k=6, type="landscape")
        assert [r["image_file"] for r in web["results"]] == \
            [r.image_file for r in gallery.search(similar=query, k=6, type="landscape")]
        web = api(text="stormy sea", k=4)
        mine = gallery.search(text="stormy sea", k=4)
        assert web["mode"] == mine.kind == "hybrid" and web["notices"] == mine.notices
        assert [r["image_file"] for r in web["results"]] == [r.image_file for r in mine]
        web = api(similar=query, school="Atlantis")
        assert web["empty_because"] == gallery.search(similar=query,
                                                      school="Atlantis").empty_because


def test_a_filter_that_only_the_query_painting_passes_is_explained_as_such(gallery):
    query = _files(gallery)[0]
    author = gallery.painting(query)["author"]
    others = gallery.connection.execute("SELECT count(*) FROM painting WHERE author = %s",
                                        (author,)).fetchone()[0]
    gallery.connection.rollback()
    if others != 1:
        pytest.skip("the sample's first painter has more than one painting")
    results = gallery.search(similar=query, author=author)
    assert len(results) == 0
    assert results.empty_because == (
        f"author contains {author!r} matches 1 painting of {MODEL}, but none of them "
        "is among the results (a search leaves its query painting out)")
