"""Cut-off, date order and pages on every search function (issue 14, section 3), checked
against exact answers computed in numpy from the stored vectors."""

from __future__ import annotations

import subprocess

import numpy as np
import psycopg
import pytest

from pgallery.database import connect
from pgallery.database.embedded import bin_dir
from synthetic import load_collection, make_collection, queries_near

MODEL = "test/pages"


@pytest.fixture(scope="module")
def collection():
    return make_collection(3000, seed=14, prefix="pg")


@pytest.fixture(scope="module")
def db(make_database, collection):
    url = make_database(prefix="pages")
    with connect(url) as conn:
        load_collection(conn, collection, MODEL)
    with connect(url, autocommit=True) as conn:
        yield conn


def files(rows):
    return [r[0] for r in rows]


def similarity_of(collection, q):
    return 1 - (1 - collection.vectors @ (q / np.linalg.norm(q)))


def test_min_similarity_keeps_exactly_the_top_results_at_or_above_it(db, collection):
    q = queries_near(collection, 1, seed=3)[0]
    sims = np.sort(similarity_of(collection, q))[::-1]
    cut = float(sims[6] - 1e-4)      # the 7th best: seven results pass, not ten
    rows = db.execute("SELECT image_file, similarity FROM search_by_vector(%s, k => 10,"
                      " min_similarity => %s, exact => true)", (q, cut)).fetchall()
    assert files(rows) == collection.exact_top_k(q, 7)
    assert all(r[1] >= cut for r in rows)
    # the same through the ANN index, and as a cut-off no result reaches
    ann = db.execute("SELECT image_file FROM search_by_vector(%s, k => 10,"
                     " min_similarity => %s)", (q, cut)).fetchall()
    assert len(set(files(ann)) & set(collection.exact_top_k(q, 7))) >= 6
    assert db.execute("SELECT count(*) FROM search_by_vector(%s, min_similarity => 0.9999)",
                      (q,)).fetchone()[0] == 0


def test_order_by_date_orders_the_same_k_results_by_year_unknown_last(db, collection):
    by_similarity = db.execute("SELECT image_file FROM search_by_image('pg-000010.jpg',"
                               " k => 12)").fetchall()
    db.execute("UPDATE painting SET date = 'undated' WHERE image_file = %s",
               (by_similarity[0][0],))
    try:
        for order, reverse in (("date", False), ("date_desc", True)):
            rows = db.execute("SELECT image_file, date FROM search_by_image('pg-000010.jpg',"
                              " k => 12, order_by => %s)", (order,)).fetchall()
            assert sorted(files(rows)) == sorted(files(by_similarity))
            assert rows[-1][1] == "undated"
            years = [int(d) for _, d in rows[:-1]]
            assert years == sorted(years, reverse=reverse)
    finally:
        db.execute("UPDATE painting SET date = %s WHERE image_file = %s",
                   (collection.records[int(by_similarity[0][0][3:9])].date,
                    by_similarity[0][0]))


@pytest.mark.parametrize("filters", [{}, {"school": "sienese"}, {"painting_type": "landscape"}],
                         ids=["unfiltered", "few match (exact path)", "many match (ANN)"])
def test_pages_one_to_five_concatenated_are_the_top_5k(db, collection, filters):
    q = queries_near(collection, 1, seed=5)[0]
    named = "".join(f", {key} => %({key})s" for key in filters)
    pages = []
    for page in range(1, 6):
        pages += files(db.execute(
            f"SELECT image_file FROM search_by_vector(%(q)s, k => 10, page => %(page)s"
            f"{named})", {"q": q, "page": page, **filters}).fetchall())
    exact = collection.exact_top_k(q, 50, **filters)
    assert len(pages) == len(set(pages)) == 50            # no result twice
    assert len(set(pages) & set(exact)) >= 48             # recall of the ANN paths
    exact_pages = []
    for page in range(1, 6):
        exact_pages += files(db.execute(
            f"SELECT image_file FROM search_by_vector(%(q)s, k => 10, page => %(page)s,"
            f" exact => true{named})", {"q": q, "page": page, **filters}).fetchall())
    assert exact_pages == exact                           # and exactly, in exact mode


def test_page_fifty_under_a_filter_continues_the_iterative_scan(db, collection):
    seen = set()
    for page in (49, 50):
        rows = files(db.execute("SELECT image_file FROM search_by_image('pg-000020.jpg',"
                                " k => 10, page => %s, technique => 'oil')", (page,)))
        assert len(rows) == 10 and not seen & set(rows)
        seen |= set(rows)
    assert all(collection.mask(technique="oil")[int(f[3:9])] for f in seen)


def test_text_and_hybrid_searches_page_and_cut_off_too(db, collection):
    db.execute("SELECT store_prompt_embedding('pages prompt', %s)", (collection.vectors[5],))
    first = files(db.execute("SELECT image_file FROM search_by_text('pages prompt', k => 5)"))
    second = files(db.execute("SELECT image_file FROM search_by_text('pages prompt', k => 5,"
                              " page => 2)"))
    assert not set(first) & set(second) and first[0] == "pg-000005.jpg"
    h1 = files(db.execute("SELECT image_file FROM search_hybrid('pages prompt', k => 5)"))
    h2 = files(db.execute("SELECT image_file FROM search_hybrid('pages prompt', k => 5,"
                          " page => 2)"))
    assert len(h1) == len(h2) == 5 and not set(h1) & set(h2)
    assert db.execute("SELECT count(*) FROM search_hybrid('stormy sea', k => 5,"
                      " min_similarity => 0.5)").fetchone()[0] == 0  # keyword-only: no similarity


@pytest.mark.parametrize("argument, message", [
    ("page => 0", "page must be 1 or more"),
    ("page => 20, k => 10000", "page must be 1 or more"),
    ("order_by => 'price'", "order_by must be similarity, date or date_desc"),
    ("min_similarity => 1.5", "min_similarity must be between -1 and 1"),
])
def test_bad_values_are_refused_with_a_pgallery_error(db, argument, message):
    with pytest.raises(psycopg.Error, match=message) as info:
        db.execute(f"SELECT * FROM search_by_image('pg-000001.jpg', {argument})")
    assert info.value.sqlstate == "PGA06"


def test_from_psql_as_a_user_types_it(db):
    result = subprocess.run(
        [str(bin_dir() / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         _url(db), "-c",
         "SELECT image_file FROM search_by_image('pg-000001.jpg', k => 3, page => 2,"
         " order_by => 'date_desc', min_similarity => -1)"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3


def _url(conn) -> str:
    info = conn.info
    return (f"postgresql://{info.user}:{info.password}@{info.host}:{info.port}/{info.dbname}")


def test_the_cli_takes_min_similarity_order_and_page_on_every_search(db, monkeypatch,
                                                                       tmp_path):
    import json

    from typer.testing import CliRunner

    from pgallery.commands import app

    monkeypatch.setenv("DATABASE_URL", _url(db))
    monkeypatch.chdir(tmp_path)

    def run(*args):
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.output

    code, out = run("search", "painting", "pg-000001.jpg", "--k", "4", "--page", "2", "--json")
    assert code == 0, out
    expected = files(db.execute("SELECT image_file FROM search_by_image('pg-000001.jpg',"
                                " k => 4, page => 2)"))
    assert [r["image_file"] for r in json.loads(out)] == expected
    code, out = run("search", "painting", "pg-000001.jpg", "--order", "date", "--json",
                    "--min-similarity", "-1")
    years = [int(r["date"]) for r in json.loads(out)]
    assert code == 0 and years == sorted(years)
    code, out = run("search", "text", "pages prompt", "--page", "2", "--k", "3", "--json")
    assert code == 0 and len(json.loads(out)) == 3
    code, out = run("search", "painting", "pg-000001.jpg", "--order", "price")
    assert code != 0 and "order must be one of" in out and "Traceback" not in out
