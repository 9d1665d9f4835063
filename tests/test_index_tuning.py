"""Recall measured on the user's own collection (issue 15): `pgallery index tune` records
what it measured and sets the default, `index status` and index_tuning_status() show it, a
load that changes the collection substantially measures by itself, and the lost-query
guard answers a far-off first page of "more like this" exactly."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery import tuning
from pgallery.database import connect
from pgallery.loading.embeddings_file import load_embeddings_file
from test_tuning import easy_vectors, hard_vectors, load

MODEL = "test/tuning"


def run(url, monkeypatch, *args):
    monkeypatch.setenv("DATABASE_URL", url)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def database_default(url, name="hnsw.ef_search"):
    with psycopg.connect(url) as conn:        # a new session sees the database's default
        conn.execute("SELECT '[1]'::vector")
        return conn.execute(f"SHOW {name}").fetchone()[0]


@pytest.fixture(scope="module")
def hard(make_database):
    url = make_database()
    load(url, hard_vectors(2000, seed=3), "hard")
    return url


@pytest.fixture(scope="module")
def easy(make_database):
    url = make_database()
    load(url, easy_vectors(2000, seed=3), "easy")
    return url


def test_tune_sets_a_larger_default_on_hard_data_than_on_easy_data(hard, easy, monkeypatch):
    chosen = {}
    for name, url in (("hard", hard), ("easy", easy)):
        code, out = run(url, monkeypatch, "index", "tune", "--sample", "60")
        assert code == 0, out
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT chosen, sample_size, mean, p5, share_below_half,"
                               " jsonb_array_length(measurements), lost_query_distance"
                               " FROM index_tuning_status()").fetchone()
        chosen[name] = row[0]
        assert row[1] == 60 and row[5] >= 1 and row[6] > 0
        assert row[0] is not None and row[2] >= 0.98 and row[3] >= 0.8
        assert database_default(url) == str(row[0])
        assert float(database_default(url, "pgallery.lost_query_distance")) == \
            pytest.approx(row[6], rel=1e-5)
        assert f"hnsw.ef_search = {row[0]}" in out
    assert chosen["hard"] > chosen["easy"]


def test_status_shows_the_last_measurement(hard, monkeypatch):
    code, out = run(hard, monkeypatch, "index", "status")
    assert code == 0, out
    assert MODEL in out and "hnsw.ef_search" in out and "recall measurements" in out


def test_a_measurement_is_kept_by_the_size_heuristic_after_a_small_load(hard):
    before = database_default(hard)
    with connect(hard, autocommit=True) as conn:
        conn.execute("SELECT tune_search_defaults()")
    assert database_default(hard) == before


def test_dry_run_changes_nothing(easy, monkeypatch):
    with psycopg.connect(easy) as conn:
        count = conn.execute("SELECT count(*) FROM index_tuning").fetchone()[0]
    code, out = run(easy, monkeypatch, "index", "tune", "--sample", "30", "--dry-run")
    assert code == 0, out
    with psycopg.connect(easy) as conn:
        assert conn.execute("SELECT count(*) FROM index_tuning").fetchone()[0] == count


def test_a_load_that_changes_the_collection_measures_recall_by_itself(make_database,
                                                                        tmp_path):
    url = make_database()
    vectors = hard_vectors(tuning.MIN_TUNING_ROWS, seed=8)  # the least a load measures
    path = tmp_path / "load.tsv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("image_file\ttitle\tvector\n")
        for i, v in enumerate(vectors):
            fh.write(f"ld-{i:05d}.jpg\tT {i}\t[{', '.join(repr(float(x)) for x in v)}]\n")
    with connect(url) as conn:
        summary = load_embeddings_file(conn, path, model="test/loaded")
    assert summary.tuning is not None and summary.tuning.sample_size > 0
    with psycopg.connect(url) as conn:
        vectors_then = conn.execute("SELECT vectors FROM index_tuning_status()").fetchone()[0]
    assert vectors_then == tuning.MIN_TUNING_ROWS
    with connect(url) as conn:        # the same file again changes nothing: no new measurement
        again = load_embeddings_file(conn, path, model="test/loaded")
    assert again.tuning is None


def test_the_guard_answers_a_far_off_first_page_exactly(hard):
    with connect(hard, autocommit=True) as conn:
        def page(query, guard):
            conn.execute("SELECT set_config('pgallery.lost_query_distance', %s, false)",
                         (guard,))
            return [r[0] for r in conn.execute(query).fetchall()]

        more_like = "SELECT image_file FROM search_by_image('hard-00042.jpg', ef_search => 10)"
        exact = [r[0] for r in conn.execute(
            "SELECT image_file FROM search_by_image('hard-00042.jpg', exact => true)")]
        # a threshold nothing passes: every first page is answered exactly
        assert page(more_like, "0") == exact
        # a threshold nothing reaches: the graph's own answer, as without the guard
        unguarded = page(more_like, "")
        assert page(more_like, "2") == unguarded
        # pages after the first and other kinds of query are not guarded
        second = ("SELECT image_file FROM search_by_image('hard-00042.jpg', ef_search => 10,"
                  " page => 2)")
        assert page(second, "0") == page(second, "")
        q = np.asarray(hard_vectors(2000, seed=3)[42])
        by_vector = ("SELECT image_file FROM search_by_vector(%s, ef_search => 10)")
        conn.execute("SELECT set_config('pgallery.lost_query_distance', '0', false)")
        guarded = [r[0] for r in conn.execute(by_vector, (q,))]
        conn.execute("SELECT set_config('pgallery.lost_query_distance', '', false)")
        assert guarded == [r[0] for r in conn.execute(by_vector, (q,))]
