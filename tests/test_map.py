"""The map: a layout that keeps neighbourhoods, stored in painting_map; map_points() from
psql-like calls and from Python (the limit, the box, the filters); new paintings placed
without moving the others; the after-load step; `pgallery map` on the command line."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from PIL import Image
from typer.testing import CliRunner

from pgallery import Gallery
from pgallery.commands import app
from pgallery.database import connect
from pgallery.errors import ArgError
from pgallery.loading.after_load import after_load
from pgallery.loading.writer import write_batch
from pgallery.map import layout, store
from synthetic import load_collection, make_collection

runner = CliRunner()
MODEL = "test/map"
N = 1500


def clustered(n: int, clusters: int = 60, seed: int = 0) -> np.ndarray:
    """Unit vectors in clusters with a structure of their own (a wide 16-d spread each,
    so that two axes cannot show both the clusters and what is inside them)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, 256))
    bases = rng.standard_normal((clusters, 16, 256)) * 0.2
    c = rng.integers(0, clusters, n)
    X = centres[c] + np.einsum("ij,ijk->ik", rng.standard_normal((n, 16)), bases[c])
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


# --- the layout (no database) -------------------------------------------------------------

def test_the_neighbour_layout_keeps_twice_the_neighbours_pca_keeps():
    X = clustered(1000)
    kept_pca = layout.neighbourhood_preservation(X, layout.layout(X, "pca")).mean()
    kept = layout.neighbourhood_preservation(X, layout.layout(X, "neighbours")).mean()
    assert kept >= 2 * kept_pca and kept >= 6, (kept, kept_pca)


def test_positions_fill_the_unit_square_and_repeat_for_a_seed():
    X = clustered(300)
    a, b = layout.layout(X, seed=3), layout.layout(X, seed=3)
    assert a.shape == (300, 2) and np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert max(a[:, 0].max() - a[:, 0].min(), a[:, 1].max() - a[:, 1].min()) > 0.9


def test_the_clustered_graph_finds_nearly_every_true_neighbour():
    X = clustered(3000)
    exact, _ = layout.nearest_neighbours(X, 15)
    approx, _ = layout.clustered_neighbours(X, 15)
    found = np.mean([len(np.intersect1d(exact[i], approx[i])) / 15 for i in range(0, 3000, 7)])
    assert found > 0.9


def test_an_unknown_method_is_refused_in_words():
    with pytest.raises(ValueError, match="method must be one of neighbours, pca"):
        layout.layout(clustered(10), "tsne")


# --- the map in SQL ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mapped(make_database):
    """A database of N synthetic paintings laid out by the neighbour method."""
    url = make_database()
    collection = make_collection(N, seed=4, prefix="map")
    with connect(url, autocommit=True) as conn:
        load_collection(conn, collection, model=MODEL)
        conn.execute("SELECT use_model(%s)", (MODEL,))
        summary = store.full_layout(conn, MODEL)
    assert summary.paintings == N
    return url, collection


def points(conn, sql: str, *args) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def test_map_points_returns_at_most_lim_paintings_inside_the_box(mapped):
    url, _ = mapped
    with connect(url, autocommit=True) as conn:
        whole = points(conn, "SELECT image_file, x, y FROM map_points(0, 0, 1, 1, lim => 200)")
        box = points(conn, "SELECT image_file, x, y FROM map_points(0.2, 0.3, 0.7, 0.6,"
                           " lim => 50)")
        inside = conn.execute("SELECT count(*) FROM painting_map WHERE x BETWEEN 0.2 AND 0.7"
                              " AND y BETWEEN 0.3 AND 0.6").fetchone()[0]
    assert len(whole) == 200
    assert len(box) == min(50, inside) and inside > 50
    assert all(0.2 <= x <= 0.7 and 0.3 <= y <= 0.6 for _, x, y in box)


def test_a_zoomed_out_view_is_an_even_sample_of_the_whole_map(mapped):
    url, _ = mapped
    with connect(url, autocommit=True) as conn:
        sample = np.array(points(conn, "SELECT x, y FROM map_points(0, 0, 1, 1, lim => 300)"))
        every = np.array(points(conn, "SELECT x, y FROM painting_map"))
    # the share of the sample left of the median x is the share of the whole map
    median = np.median(every[:, 0])
    assert abs((sample[:, 0] < median).mean() - 0.5) < 0.1


def test_a_box_with_fewer_paintings_than_lim_returns_every_one_of_them(mapped):
    url, _ = mapped
    with connect(url, autocommit=True) as conn:
        x, y = conn.execute("SELECT x, y FROM painting_map ORDER BY painting_id"
                            " LIMIT 1").fetchone()
        got = {r[0] for r in points(conn, "SELECT painting_id FROM map_points(%s, %s, %s, %s,"
                                          " lim => 5000)", x - .03, y - .03, x + .03, y + .03)}
        truth = {r[0] for r in points(conn, "SELECT painting_id FROM painting_map WHERE"
                                            " x BETWEEN %s AND %s AND y BETWEEN %s AND %s",
                                      x - .03, x + .03, y - .03, y + .03)}
    assert got == truth and len(truth) >= 1


def test_map_points_applies_the_search_filters(mapped):
    url, collection = mapped
    with connect(url, autocommit=True) as conn:
        rows = points(conn, "SELECT p.school, p.painting_type FROM map_points(0, 0, 1, 1,"
                            " lim => 5000, school => 'sienese', painting_type => 'portrait')"
                            " m JOIN painting p USING (painting_id)")
    expected = collection.mask(school="sienese", painting_type="portrait").sum()
    assert len(rows) == expected > 0
    assert all(s == "Sienese" and t == "portrait" for s, t in rows)


@pytest.mark.parametrize("filters", ["author => 'gogh'", "painting_type => 'portrait'",
                                     "technique => 'canvas'", "year_from => 1500"])
def test_a_filtered_view_is_the_lowest_ranked_matches_in_the_box(mapped, filters):
    """Rare filters read the matches first, broad ones walk the levels: the same answer."""
    url, _ = mapped
    with connect(url, autocommit=True) as conn:
        got = [r[0] for r in points(conn, f"SELECT painting_id FROM map_points(0.02, 0.02, 1,"
                                          f" 1, lim => 60, {filters})")]
        truth = [r[0] for r in points(conn, f"""
            SELECT m.painting_id FROM painting_map m JOIN painting p USING (painting_id)
            WHERE m.x BETWEEN 0.02 AND 1 AND m.y BETWEEN 0.02 AND 1
              AND painting_matches(p, search_request({filters}))
            ORDER BY m.sample_rank LIMIT 60""")]
    assert got == truth and len(got) >= 1


@pytest.mark.parametrize("call, message", [
    ("map_points(0.5, 0, 0.4, 1)", "x0 <= x1"),
    ("map_points('NaN', 0, 1, 1)", "x0 <= x1"),
    ("map_points(0, 0, 1, 1, lim => 0)", "lim must be between 1 and 5000"),
    ("map_points(0, 0, 1, 1, year_from => 1700, year_to => 1600)", "is after year_to"),
])
def test_a_bad_viewport_is_one_line_error(mapped, call, message):
    url, _ = mapped
    with connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match=message):
            conn.execute(f"SELECT * FROM {call}")


def test_a_box_off_the_map_is_empty(mapped):
    url, _ = mapped
    with connect(url, autocommit=True) as conn:
        assert points(conn, "SELECT * FROM map_points(2, 2, 3, 3)") == []


def test_the_reader_role_may_read_the_map(mapped):
    url, collection = mapped
    with connect(url, autocommit=True) as conn:
        conn.execute("SET ROLE pgallery_reader")
        assert len(points(conn, "SELECT * FROM map_points(0, 0, 1, 1, lim => 10)")) == 10
        # a rare filter takes the path that reads the matching paintings first
        rare = points(conn, "SELECT * FROM map_points(0, 0, 1, 1, author => 'gogh')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT place_on_map()")
    assert len(rare) == sum(1 for r in collection.records if "GOGH" in r.author) > 0


def test_the_gallery_answers_the_same_points_as_sql(mapped):
    url, _ = mapped
    with Gallery(url) as core:
        rows = core.map_points("0.1,0.1,0.9,0.9", 40, school="dutch")
        with pytest.raises(ArgError, match="bbox must be four numbers"):
            core.map_points("0,0,1", 10)
        with pytest.raises(ArgError, match="limit must be between 1 and 5000"):
            core.map_points(None, 5001)
    with connect(url, autocommit=True) as conn:
        sql = points(conn, "SELECT image_file FROM map_points(0.1, 0.1, 0.9, 0.9, lim => 40,"
                           " school => 'dutch')")
    assert [r["image_file"] for r in rows] == [r[0] for r in sql] and len(rows) == 40


# --- new paintings --------------------------------------------------------------------------

def test_new_paintings_are_placed_beside_their_neighbours_and_nothing_else_moves(
        make_database):
    url = make_database()
    collection = make_collection(1200, seed=5, prefix="grow")
    old, new = collection.records[:1000], collection.records[1000:]
    with connect(url, autocommit=True) as conn:
        load_collection(conn, type(collection)(collection.vectors[:1000], old), model=MODEL)
        conn.execute("SELECT use_model(%s)", (MODEL,))
        store.full_layout(conn, MODEL)
        before = dict(points(conn, "SELECT painting_id, point(x, y)::text FROM painting_map"))
        write_batch(conn, MODEL, new, first_ordinal=1000)
        placed = conn.execute("SELECT place_on_map()").fetchone()[0]
        after = dict(points(conn, "SELECT painting_id, point(x, y)::text FROM painting_map"))
        ranks = [r[0] for r in points(conn, "SELECT sample_rank FROM painting_map"
                                            " ORDER BY sample_rank")]
        kinds = dict(points(conn, "SELECT placed_by, count(*) FROM painting_map GROUP BY 1"))
        ids, X = store.read_vectors(conn, MODEL)
        pos = dict((r[0], (r[1], r[2])) for r in points(conn, "SELECT painting_id, x, y"
                                                              " FROM painting_map"))
        again = conn.execute("SELECT place_on_map()").fetchone()[0]
    assert placed == 200 and again == 0
    assert {k: after[k] for k in before} == before          # nobody moved
    assert ranks == list(range(1200))                        # still a permutation
    assert kinds == {"layout": 1000, "neighbours": 200}
    P = np.array([pos[i] for i in ids])             # ids in painting_id order: old first
    kept_old = layout.neighbourhood_preservation(X, P, rows=np.arange(1000)).mean()
    kept_new = layout.neighbourhood_preservation(X, P, rows=np.arange(1000, 1200)).mean()
    random = layout.neighbourhood_preservation(
        X, np.random.default_rng(0).random((1200, 2)), rows=np.arange(1000, 1200)).mean()
    # a placed painting lands among its look-alikes, nearly as well as a laid-out one
    assert kept_new > 0.6 * kept_old and kept_new > 10 * random, (kept_new, kept_old)


def test_after_a_load_the_map_is_made_and_then_grown(make_database):
    url = make_database()
    collection = make_collection(300, seed=6, prefix="after")
    with connect(url) as conn:
        load_collection(conn, type(collection)(collection.vectors[:250],
                                               collection.records[:250]), model=MODEL)
        conn.execute("SELECT use_model(%s)", (MODEL,))
        conn.commit()
        first = after_load(conn, tune=False)
        count = conn.execute("SELECT count(*) FROM painting_map").fetchone()[0]
        write_batch(conn, MODEL, collection.records[250:], first_ordinal=250)
        conn.commit()
        second = after_load(conn, tune=False)
        status = store.status(conn, MODEL)
    assert count == 250 and any("laid out the map of 250" in note for note in first.map_notes)
    assert (status.laid_out, status.placed, status.unplaced) == (250, 50, 0)
    assert second.map_notes[0] == ("placed 50 new paintings on the map beside their "
                                  "nearest neighbours")


# --- the command line ------------------------------------------------------------------------

def test_map_layout_and_png_on_the_command_line(mapped, monkeypatch, tmp_path):
    url, _ = mapped
    monkeypatch.setenv("DATABASE_URL", url)
    result = runner.invoke(app, ["map", "layout", "--method", "pca"])
    assert result.exit_code == 0, result.output
    assert f"laid out {N:,} paintings" in result.output
    result = runner.invoke(app, ["map", "status"])
    assert result.exit_code == 0 and f"│ {N}" in result.output
    png = tmp_path / "map.png"
    result = runner.invoke(app, ["map", "--png", str(png), "--size", "600"])
    assert result.exit_code == 0, result.output
    with Image.open(png) as picture:
        assert picture.size == (600, 600)
        # something was drawn on the white page
        assert picture.convert("L").getextrema()[0] < 200
    result = runner.invoke(app, ["map", "--png", str(tmp_path / "no" / "map.png")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    store.full_layout(connect(url, autocommit=True), MODEL)     # back to the default layout


def test_a_model_without_vectors_has_no_map_to_lay_out(make_database):
    url = make_database()
    with connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO embedding_model (name, dimension, is_active)"
                     " VALUES ('test/empty', 8, true)")
    with Gallery(url) as core:
        with pytest.raises(ArgError, match="model test/empty has no vectors to lay out"):
            core.map_layout()
        assert core.map_points() == [] and core.place_on_map() == 0
