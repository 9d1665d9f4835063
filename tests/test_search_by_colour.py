"""Search by colour: search_by_colour() from psql-like calls, Gallery.search(colour=...),
`pgallery search colour` and `pgallery palettes backfill`, on a collection of pictures
whose dominant colours are known (tests/colour_gallery.py), against a numpy reference of
the score computed from the stored palettes themselves."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from colour_gallery import COLOURS, make_pictures
from pgallery import Gallery
from pgallery.commands import app
from pgallery.database import connect
from pgallery.errors import ArgError
from pgallery.loading.palettes import backfill_palettes, count_missing_palettes
from pgallery.loading.records import PaintingRecord
from pgallery.loading.writer import register_model, write_batch
from pgallery.palette import ANCHORS, srgb_to_lab

MODEL = "test/colour"
SCHOOLS = ("Dutch", "Italian", "French")
runner = CliRunner()


def hex_of(name: str) -> str:
    return "#%02x%02x%02x" % COLOURS[name]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return make_pictures(tmp_path_factory.mktemp("colour-pictures"), per_colour=12)


def write_paintings(url, pictures) -> None:
    rng = np.random.default_rng(5)
    records = [PaintingRecord(image_file=p.image_file, title=f"{p.dominant} study {i}",
                              author="PAINTER, Test", school=SCHOOLS[i % 3],
                              date=str(1500 + (i * 37) % 300), image_uri=str(p.path),
                              embedding=rng.standard_normal(1024).astype(np.float32))
               for i, p in enumerate(pictures)]
    with connect(url) as conn:
        register_model(conn, MODEL, 1024, "test")
        write_batch(conn, MODEL, records)


@pytest.fixture(scope="module")
def url(make_database, pictures):
    url = make_database(prefix="colour")
    write_paintings(url, pictures)
    with connect(url) as conn:
        summary = backfill_palettes(conn)
    assert summary.done == len(pictures) and summary.remaining == 0
    return url


@pytest.fixture
def db(url):
    conn = connect(url, autocommit=True)
    yield conn
    conn.close()


def by_colour(db, colours, **args) -> list[tuple]:
    named = "".join(f", {name} => %({name})s" for name in args)
    return db.execute(f"SELECT image_file, similarity FROM search_by_colour(%(colours)s{named})",
                      {"colours": colours, **args}).fetchall()


def reference(db, colours: list[tuple[str, float]], school: str | None = None) -> list[tuple]:
    """Every painting's score by the documented rule, in numpy: for each asked colour
    min(weight, sum of shares * exp(-dE^2 / 800)), summed; best first, ties by id."""
    rows = db.execute("SELECT p.painting_id, p.image_file, pp.lab, pp.shares FROM painting p"
                      " JOIN painting_palette pp USING (painting_id)"
                      " WHERE %s::text IS NULL OR p.school ILIKE %s",
                      (school, school)).fetchall()
    q = srgb_to_lab(np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h, _ in colours]))
    w = np.array([weight for _, weight in colours])
    scored = []
    for painting_id, image_file, lab, shares in rows:
        d2 = ((q[:, None, :] - np.array(lab)[None, :, :]) ** 2).sum(axis=2)
        covered = (np.exp(-d2 / 800) * np.array(shares)[None, :]).sum(axis=1)
        scored.append((-np.minimum(w, covered).sum(), painting_id, image_file))
    return [(f, -s) for s, _, f in sorted(scored)]


# --- SQL, as a psql user calls it ------------------------------------------------------------

def test_sql_converts_hex_to_lab_exactly_as_the_loader_does(db):
    rgb = np.random.default_rng(2).integers(0, 256, (60, 3))
    for r, g, b in rgb:
        lab = db.execute("SELECT colour_lab(%s)", (f"#{r:02x}{g:02x}{b:02x}",)).fetchone()[0]
        assert np.allclose(lab, srgb_to_lab([r, g, b]), atol=1e-3)


def test_the_written_out_anchors_are_the_srgb_cube_in_lab(db):
    anchors, computed = db.execute(
        "SELECT colour_anchors(), array_agg(srgb_to_lab(51 * r, 51 * g, 51 * b)"
        " ORDER BY r, g, b) FROM generate_series(0, 5) r, generate_series(0, 5) g,"
        " generate_series(0, 5) b").fetchone()
    assert np.allclose(anchors, computed, atol=1e-3)
    assert np.array_equal(np.array(anchors, np.float32), ANCHORS.astype(np.float32))


def test_the_loaders_histograms_are_those_sql_computes(db):
    # the backfill sent each histogram computed in Python; SQL computes the same
    rows = db.execute("SELECT histogram, palette_histogram(lab, shares) FROM painting_palette"
                      " ORDER BY painting_id LIMIT 20").fetchall()
    for sent, computed in rows:
        assert np.allclose(sent.to_numpy(), computed.to_numpy(), atol=2e-6)


@pytest.mark.parametrize("name", list(COLOURS))
def test_one_colour_finds_the_paintings_it_dominates(db, name):
    rows = by_colour(db, [hex_of(name)], k=10)
    assert len(rows) == 10
    assert all(f.startswith(f"col-{name}-") for f, _ in rows), rows
    assert [s for _, s in rows] == sorted((s for _, s in rows), reverse=True)


def test_the_ranking_is_the_documented_score(db):
    asked = [(hex_of("navy"), 0.75), (hex_of("gold"), 0.25)]
    expected = reference(db, asked)[:10]
    rows = by_colour(db, ["#1e3a8a:3", "#d4af37:1"], k=10)
    assert [f for f, _ in rows] == [f for f, _ in expected]
    assert np.allclose([s for _, s in rows], [s for _, s in expected], atol=1e-4)


def test_the_index_path_gives_the_exact_paths_answer(db):
    for colours in (["#1e3a8a"], ["#aa192d", "#f0ebd7"], ["#6e328c:2", "#78afe1:1"]):
        assert by_colour(db, colours, k=10) == by_colour(db, colours, k=10, exact=True)


def test_filters_are_those_of_every_search(db):
    rows = by_colour(db, ["#d4af37"], k=10, school="dutch")
    expected = reference(db, [("#d4af37", 1.0)], school="%dutch%")[:10]
    assert [f for f, _ in rows] == [f for f, _ in expected]
    schools = db.execute("SELECT DISTINCT school FROM painting WHERE image_file = ANY(%s)",
                         ([f for f, _ in rows],)).fetchall()
    assert schools == [("Dutch",)]


def test_pages_continue_the_ranking_without_repeats(db):
    first, second = (by_colour(db, ["#226432"], k=7, page=p) for p in (1, 2))
    assert by_colour(db, ["#226432"], k=14) == first + second


def test_min_similarity_and_order_by_shape_the_page(db):
    rows = by_colour(db, ["#1e3a8a"], k=30, min_similarity=0.6)
    assert rows and all(s >= 0.6 for _, s in rows) and len(rows) < 30
    dated = db.execute("SELECT p.date FROM search_by_colour(ARRAY['#1e3a8a'], k => 10,"
                       " order_by => 'date') r JOIN painting p USING (image_file)").fetchall()
    assert [d for d, in dated] == sorted(d for d, in dated)


@pytest.mark.parametrize("colours, words", [
    (["navy"], "not a colour"), (["#1e3a8a:0"], "weight"), ([], "1 to 5 colours"),
    (["#000000"] * 6, "1 to 5 colours")])
def test_bad_colours_raise_pgallerys_invalid_argument(db, colours, words):
    with pytest.raises(psycopg.Error) as error:
        by_colour(db, colours)
    assert error.value.sqlstate == "PGA06" and words in str(error.value)


def test_the_histogram_follows_the_palette(db):
    before = db.execute("SELECT histogram FROM painting_palette ORDER BY painting_id LIMIT 1"
                        ).fetchone()[0]
    with db.transaction():
        db.execute("UPDATE painting_palette SET lab = ARRAY[[50, 0, 0]]::real[],"
                   " shares = ARRAY[1]::real[] WHERE painting_id = (SELECT min(painting_id)"
                   " FROM painting_palette)")
        after, grey = db.execute(
            "SELECT histogram, palette_histogram(ARRAY[[50, 0, 0]]::real[], ARRAY[1]::real[])"
            " FROM painting_palette ORDER BY painting_id LIMIT 1").fetchone()
        assert np.allclose(after.to_numpy(), grey.to_numpy())
        assert not np.allclose(before.to_numpy(), after.to_numpy())
        raise psycopg.Rollback()          # the shared collection stays as it was


# --- Python and the CLI ------------------------------------------------------------------------

def test_gallery_search_by_colour(url):
    with Gallery(url) as gallery:
        results = gallery.search(colour="1e3a8a,d4af37", k=5, school="italian")
        assert results.kind == "colour" and len(results) == 5
        assert all(r.school == "Italian" for r in results)
        with pytest.raises(ArgError, match="not a colour"):
            gallery.search(colour=["deep blue"])
        with pytest.raises(ArgError, match="colour"):
            gallery.search(colour=["#1e3a8a"], text="a stormy sea")


def test_cli_search_colour_prints_the_ranking(url):
    result = runner.invoke(app, ["--database-url", url, "search", "colour", "#aa192d",
                                 "--k", "4", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert [r["image_file"].split("-")[1] for r in rows] == ["crimson"] * 4


def test_cli_refuses_a_bad_colour_in_one_line(url):
    result = runner.invoke(app, ["--database-url", url, "search", "colour", "#12345g"])
    assert result.exit_code == 2
    assert "not a colour" in result.output and "Traceback" not in result.output


# --- the backfill ------------------------------------------------------------------------------

def test_backfill_resumes_where_it_stopped(make_database, pictures, tmp_path):
    url = make_database(prefix="backfill")
    write_paintings(url, pictures[:30])
    with connect(url) as conn:
        first = backfill_palettes(conn, batch_size=4, limit=10)
        assert (first.done, first.remaining) == (10, 20)
        second = backfill_palettes(conn, batch_size=4)
        assert (second.done, second.remaining) == (20, 0)
        assert backfill_palettes(conn).done == 0      # nothing left to do
        with conn.transaction():
            hashes = conn.execute("SELECT count(*) FROM painting_palette pp JOIN painting p"
                                  " USING (painting_id) WHERE pp.content_hash = p.content_hash"
                                  " OR p.content_hash IS NULL").fetchone()[0]
        assert hashes == 30


def test_the_library_backfills_with_a_progress_callback(make_database, pictures):
    url = make_database(prefix="backfill")
    write_paintings(url, pictures[:6])
    seen = []
    with Gallery(url) as gallery:
        summary = gallery.backfill_palettes(progress=lambda done, total: seen.append(
            (done, total)), batch_size=4)
        assert (summary.done, summary.remaining) == (6, 0)
        assert gallery.painting(pictures[0].image_file)["palette"][0]["share"] > 0.5
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)


def test_cli_html_page_of_a_colour_search(url, tmp_path):
    page = tmp_path / "colour.html"
    result = runner.invoke(app, ["--database-url", url, "search", "colour", "#d4af37",
                                 "--k", "3", "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "Colour search" in html and html.count('class="card') == 3


def test_backfill_reports_an_image_it_cannot_read_and_does_the_rest(make_database, pictures,
                                                                    tmp_path):
    url = make_database(prefix="backfill")
    write_paintings(url, pictures[:5])
    pictures[0].path.rename(tmp_path / "moved.jpg")
    try:
        result = runner.invoke(app, ["--database-url", url, "palettes", "backfill"])
        assert result.exit_code == 0, result.output
        assert pictures[0].image_file in result.output and "no such file" in result.output
        assert "palettes computed: 4" in result.output
        with connect(url) as conn:
            assert count_missing_palettes(conn) == 1
        # the file is back under another directory: --images finds it by image_file
        moved = tmp_path / "elsewhere"
        moved.mkdir()
        (tmp_path / "moved.jpg").rename(moved / pictures[0].image_file)
        result = runner.invoke(app, ["--database-url", url, "palettes", "backfill",
                                     "--images", str(moved)])
        assert "palettes computed: 1" in result.output, result.output
    finally:
        for place in (tmp_path / "moved.jpg", tmp_path / "elsewhere" / pictures[0].image_file):
            if place.exists():
                place.rename(pictures[0].path)


def test_a_load_computes_every_images_palette_whatever_the_provider(make_database, pictures,
                                                                     tmp_path):
    url = make_database(prefix="colourload")
    folder = tmp_path / "folder"
    folder.mkdir()
    for p in pictures[::12]:                      # one picture of each colour
        (folder / p.image_file).write_bytes(p.path.read_bytes())
    with Gallery(url) as gallery:
        gallery.load_folder(folder, provider="local")
        rows = gallery.search(colour=["#f0ebd7"], k=1)
    assert rows[0].image_file.startswith("col-ivory-")
    with connect(url) as conn:
        assert count_missing_palettes(conn) == 0


# --- the web: /api/search?colour=..., the search page, palette chips ----------------------------

@pytest.fixture(scope="module")
def server(url, tmp_path_factory):
    from pgallery.web import WebConfig
    from web_server import running_server

    with running_server(url, WebConfig(home=tmp_path_factory.mktemp("colour-web"))) as (base, _):
        yield base


def test_api_searches_by_colour(server):
    import requests

    r = requests.get(server + "/api/search", params={"colour": "1e3a8a,d4af37", "k": 6,
                                                     "school": "italian"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "colour" and body["query"]["colour"] == ["#1e3a8a", "#d4af37"]
    assert len(body["results"]) == 6 and all(x["school"] == "Italian" for x in body["results"])
    assert "colour=1e3a8a%2Cd4af37" in body["page_url"]
    single = requests.get(server + "/api/search", params={"colour": "#AA192D"}, timeout=30)
    assert all(x["image_file"].startswith("col-crimson-")
               for x in single.json()["results"][:10])


@pytest.mark.parametrize("params, words", [
    ({"colour": "navy"}, "colour must be hex colours"),
    ({"colour": "1e3a8a", "text": "a stormy sea"}, "cannot be combined"),
    ({"colour": ",".join(["000000"] * 6)}, "at most 5")])
def test_api_refuses_bad_colours_in_one_line(server, params, words):
    import requests

    r = requests.get(server + "/api/search", params=params, timeout=30)
    assert r.status_code == 422 and words in r.json()["error"], r.text


def test_painting_page_shows_its_palette_as_chips_that_search_their_colour(server, db):
    import requests

    image_file = db.execute("SELECT image_file FROM painting ORDER BY painting_id LIMIT 1"
                            ).fetchone()[0]
    api = requests.get(f"{server}/api/paintings/{image_file}", timeout=30).json()
    assert 1 <= len(api["palette"]) <= 5
    assert abs(sum(c["share"] for c in api["palette"]) - 1) < 0.01
    page = requests.get(f"{server}/paintings/{image_file}", timeout=30).text
    first = api["palette"][0]["hex"]
    assert f'href="/?colour={first[1:]}"' in page and f'data-colour="{first}"' in page
    searched = requests.get(f"{server}/?colour={first[1:]}", timeout=30)
    assert searched.status_code == 200 and "Colour search" in searched.text


def test_show_lists_the_palette_and_its_html_page_draws_the_chips(url, tmp_path):
    with connect(url) as conn:
        image_file = conn.execute("SELECT image_file FROM painting ORDER BY painting_id"
                                  " LIMIT 1").fetchone()[0]
    page = tmp_path / "painting.html"
    result = runner.invoke(app, ["--database-url", url, "show", image_file, "--html",
                                 str(page)])
    assert result.exit_code == 0, result.output
    with Gallery(url) as gallery:
        palette = gallery.painting(image_file)["palette"]
    assert f"{palette[0]['hex']} {palette[0]['share']:.0%}" in result.output
    html = page.read_text()
    assert f'style="background:{palette[0]["hex"]}"' in html and "<script" not in html


# --- composed queries: a colour term with images and text ---------------------------------------

def test_a_composed_query_mixes_a_colour_with_a_painting(db):
    anchor = "col-sky-03.jpg"
    rows = db.execute("SELECT image_file, similarity, score FROM search_combined("
                      "paintings => ARRAY[%s], colours => ARRAY['#1e3a8a:1'], k => 10)",
                      (anchor,)).fetchall()
    colour = dict(reference(db, [("#1e3a8a", 1.0)]))
    similar = dict(db.execute("SELECT image_file, similarity FROM search_by_image(%s,"
                              " k => 1000, exact => true)", (anchor,)).fetchall())
    mix = {f: (similar[f] + colour[f]) / 2 for f in similar}      # equal weights
    expected = sorted(mix, key=lambda f: -mix[f])[:10]
    assert [f for f, _, _ in rows] == expected and anchor not in expected
    for f, similarity, score in rows:
        assert similarity == pytest.approx(similar[f], abs=1e-6)
        assert score == pytest.approx(mix[f], abs=1e-4)


def test_colours_alone_in_a_composed_query_are_a_colour_search(db):
    assert db.execute("SELECT image_file FROM search_combined(colours => ARRAY['#d4af37'],"
                      " k => 5)").fetchall() == [
        (f,) for f, _ in by_colour(db, ["#d4af37"], k=5)]


def test_cli_composes_a_colour_with_a_painting(url):
    result = runner.invoke(app, ["--database-url", url, "search", "query",
                                 "@col-sky-03.jpg + 3:#aa192d", "--json", "--k", "5"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert sum(r["image_file"].startswith("col-crimson-") for r in rows) >= 4
    refused = runner.invoke(app, ["--database-url", url, "search", "query",
                                  "@col-sky-03.jpg - #aa192d"])
    assert refused.exit_code == 2 and "cannot be subtracted" in refused.output


def test_each_candidate_path_under_filters_scores_by_the_same_rule(db):
    # pgallery.colour_candidates = 4 with k = 1: 8 candidates, so the 32 Dutch paintings
    # are "few" (fewer than 25 times the candidates, not under 4 times): their histograms
    # are read without the index; the scores stay the documented ones
    colour = dict(reference(db, [("#d4af37", 1.0)], school="%dutch%"))
    with db.transaction():
        db.execute("SET LOCAL pgallery.colour_candidates = 4")
        for page in (1, 2, 3):
            (image_file, similarity), = by_colour(db, ["#d4af37"], k=1, page=page,
                                                  school="dutch")
            assert similarity == pytest.approx(colour[image_file], abs=1e-4)
        best, = by_colour(db, ["#d4af37"], k=1, school="dutch")
        assert best[0] == max(colour, key=colour.get)
