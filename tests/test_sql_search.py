"""The SQL search functions, called from SQL as a psql user would, checked against exact
numpy brute force on 20,000 synthetic paintings."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from pgallery.database import connect
from pgallery.loading.after_load import defer_hnsw_indexes, restore_indexes
from pgallery.search import EF_SEARCH_FLOOR
from synthetic import load_collection, make_collection, queries_near

N = 20_000
MODEL = "test/synthetic"


@pytest.fixture(scope="module")
def collection():
    return make_collection(N)


@pytest.fixture(scope="module")
def search_db(make_database, collection):
    """A database holding the 20k collection; the HNSW index is rebuilt after the bulk load
    (index-after-load is 4x faster than inserting into the graph row by row)."""
    url = make_database(prefix="search")
    with connect(url, autocommit=True) as conn:
        hnsw = defer_hnsw_indexes(conn, N)  # as pgallery's bulk loads do
    with connect(url) as conn:
        load_collection(conn, collection, MODEL)
    with connect(url, autocommit=True) as conn:
        restore_indexes(conn, hnsw)
        conn.execute("ANALYZE")
    return url


@pytest.fixture
def db(search_db):
    conn = connect(search_db, autocommit=True)
    yield conn
    conn.close()


def files(rows) -> list[str]:
    return [r[1] for r in rows]


# -- correctness against brute force --------------------------------------------------------

def test_exact_mode_returns_exactly_the_brute_force_top_k(db, collection):
    for q in queries_near(collection, 5):
        rows = db.execute("SELECT * FROM search_by_vector(%s, k => 10, exact => true)",
                          (q,)).fetchall()
        assert files(rows) == collection.exact_top_k(q, 10)


def test_exact_mode_with_filters_equals_filtered_brute_force(db, collection):
    q = queries_near(collection, 1, seed=7)[0]
    rows = db.execute(
        "SELECT * FROM search_by_vector(%s, k => 10, painting_type => 'PORTRAIT',"
        " school => 'dutch', exact => true)", (q,)).fetchall()
    assert files(rows) == collection.exact_top_k(q, 10, painting_type="portrait",
                                                 school="dutch")


def test_default_settings_reach_recall_at_10_of_095(db, collection):
    queries = queries_near(collection, 40, seed=3)
    hits = 0
    for q in queries:
        got = set(files(db.execute("SELECT * FROM search_by_vector(%s)", (q,)).fetchall()))
        hits += len(got & set(collection.exact_top_k(q, 10)))
    recall = hits / (10 * len(queries))
    assert recall >= 0.95, f"recall@10 = {recall:.3f}"


def test_results_come_best_first_with_similarity_one_minus_distance(db, collection):
    q = queries_near(collection, 1, seed=11)[0]
    rows = db.execute("SELECT distance, similarity, score FROM search_by_vector(%s, k => 20)",
                      (q,)).fetchall()
    distances = [r[0] for r in rows]
    assert distances == sorted(distances)
    for distance, similarity, score in rows:
        assert similarity == pytest.approx(1 - distance)
        assert score == pytest.approx(similarity)


# -- filters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("filters, sql", [
    ({"author": "gogh"}, "author => 'gogh'"),                               # 0.1%, substring
    ({"school": "SIEN"}, "school => 'SIEN'"),                               # 5%
    ({"painting_type": "Landscape"}, "painting_type => 'Landscape'"),       # 1 in 6, exact
    ({"technique": "tempera"}, "technique => 'tempera'"),                   # 1 in 3
    ({"year_from": 1500, "year_to": 1510}, "year_from => 1500, year_to => 1510"),
    ({"timeframe": "1601-1650"}, "timeframe => '1601-1650'"),
    ({"author": "gogh", "painting_type": "portrait"},
     "author => 'gogh', painting_type => 'portrait'"),
])
def test_filtered_search_returns_a_full_page_of_matching_paintings(db, collection, filters, sql):
    q = queries_near(collection, 1, seed=5)[0]
    rows = db.execute(f"SELECT * FROM search_by_vector(%s, k => 10, {sql})", (q,)).fetchall()
    matching = int(collection.mask(**filters).sum())
    assert len(rows) == min(10, matching)
    allowed = {collection.records[i].image_file
               for i in np.flatnonzero(collection.mask(**filters))}
    assert set(files(rows)) <= allowed
    exact = collection.exact_top_k(q, 10, **filters)
    assert len(set(files(rows)) & set(exact)) >= 0.9 * len(exact)


def test_rare_filter_of_one_in_a_thousand_still_returns_k_rows(db, collection):
    # 20 van Goghs among 20,000: an ANN scan alone would find almost none of them
    for q in queries_near(collection, 5, seed=9):
        rows = db.execute("SELECT * FROM search_by_vector(%s, k => 10, author => 'gogh')",
                          (q,)).fetchall()
        assert len(rows) == 10
        assert files(rows) == collection.exact_top_k(q, 10, author="gogh")


def test_the_strategy_starts_from_the_planners_estimate_of_the_matching_rows(
        db, collection, make_database):
    # nearest_paintings decides exact vs. ANN from estimated_matches (an EXPLAIN, well under
    # a millisecond) and counts for real only near the crossover or without statistics
    def estimate(sql):
        return db.execute(f"SELECT estimated_matches(search_request({sql}))").fetchone()[0]

    common = int(collection.mask(painting_type="genre").sum())
    assert common / 2 <= estimate("painting_type => 'genre'") <= common * 2
    # a rare substring is estimated loosely, but on the right side of the crossover (1000
    # rows at this size), which is all the choice needs
    assert estimate("author => 'gogh'") < 1000 <= common
    with connect(make_database(), autocommit=True) as fresh:  # never analyzed: no guess
        assert fresh.execute("SELECT estimated_matches(search_request(author => 'gogh'))"
                             ).fetchone()[0] is None


def plans_of(db, statement: str, args) -> tuple[list, list[str]]:
    """Rows of a search, and the plans of every statement it ran (auto_explain)."""
    plans = []
    db.add_notice_handler(lambda d: plans.append(d.message_primary))
    db.execute("LOAD 'auto_explain'")
    db.execute("SET auto_explain.log_min_duration = 0")
    db.execute("SET auto_explain.log_nested_statements = on")
    db.execute("SET auto_explain.log_level = notice")
    rows = db.execute(statement, args).fetchall()
    db.execute("SET auto_explain.log_min_duration = -1")
    return rows, plans


def test_a_common_filter_is_answered_through_the_hnsw_index(db, collection):
    q = queries_near(collection, 1, seed=13)[0]
    rows, plans = plans_of(db, "SELECT * FROM search_by_vector(%s, k => 10,"
                               " painting_type => 'genre')", (q,))
    assert len(rows) == 10
    assert any("painting_embedding_hnsw" in plan for plan in plans)


def test_an_unfiltered_search_walks_the_half_precision_index_and_reports_full_distances(
        db, collection):
    q = queries_near(collection, 1, seed=17)[0]
    rows, plans = plans_of(db, "SELECT * FROM search_by_vector(%s, k => 10)", (q,))
    assert any("Index Scan using painting_embedding_hnsw" in plan for plan in plans), plans
    # the distances are the single-precision ones, not the index's half-precision copies
    exact = db.execute("SELECT p.image_file, e.embedding <=> %s FROM painting_embedding e"
                       " JOIN painting p USING (painting_id) WHERE p.image_file = ANY(%s)",
                       (q, [r[1] for r in rows])).fetchall()
    assert {r[1]: r[9] for r in rows} == dict(exact)


def test_filter_values_are_data_never_sql(db):
    before = db.execute("SELECT count(*) FROM painting").fetchone()[0]
    q = np.ones(1024, dtype=np.float32)
    for hostile in ["'; DROP TABLE painting; --", "%", "_", "\\", "' OR '1'='1", "\x01"]:
        rows = db.execute("SELECT * FROM search_by_vector(%s, author => %s)",
                          (q, hostile)).fetchall()
        # no painting's author contains any of these literally
        assert rows == [], hostile
    assert db.execute("SELECT count(*) FROM painting").fetchone()[0] == before


def test_like_wildcards_in_a_filter_are_taken_literally(db):
    assert db.execute("SELECT like_pattern('50%_off')").fetchone()[0] == "%50\\%\\_off%"


# -- search_by_image -------------------------------------------------------------------------

def test_search_by_image_leaves_the_query_painting_out(db, collection):
    rows = db.execute("SELECT * FROM search_by_image('syn-000042.jpg', k => 10, exact => true)"
                      ).fetchall()
    expected = [f for f in collection.exact_top_k(collection.vectors[42], 11)
                if f != "syn-000042.jpg"][:10]
    assert files(rows) == expected


def test_search_by_image_with_an_unknown_painting_names_it(db):
    with pytest.raises(psycopg.Error) as err:
        db.execute("SELECT * FROM search_by_image('no-such.jpg')").fetchall()
    assert err.value.sqlstate == "PGA03"
    assert "no-such.jpg" in err.value.diag.message_primary


# -- bad arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, sqlstate", [
    ("search_by_vector('[1,2,3]'::vector)", "PGA01"),
    ("search_by_vector(array_fill(0::real, ARRAY[1024])::vector)", "PGA02"),
    ("search_by_vector(array_fill(1::real, ARRAY[1024])::vector, k => 0)", "PGA06"),
    ("search_by_vector(array_fill(1::real, ARRAY[1024])::vector, k => -5)", "PGA06"),
    ("search_by_vector(array_fill(1::real, ARRAY[1024])::vector, k => 2000000000)", "PGA06"),
    ("search_by_vector(array_fill(1::real, ARRAY[1024])::vector, year_from => 1700,"
     " year_to => 1600)", "PGA07"),
    ("search_by_vector(array_fill(1::real, ARRAY[1024])::vector, model => 'nope')", "PGA04"),
    ("search_by_vector(array_fill(1::real, ARRAY[1024])::vector, ef_search => 0)", "PGA06"),
    ("search_by_vector(NULL::vector)", "PGA06"),
])
def test_bad_arguments_raise_pgallery_errors(db, call, sqlstate):
    with pytest.raises(psycopg.Error) as err:
        db.execute(f"SELECT * FROM {call}").fetchall()
    assert err.value.sqlstate == sqlstate, err.value.diag.message_primary


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_before_any_search(db, literal):
    with pytest.raises(psycopg.errors.DataException) as err:
        db.execute(f"SELECT * FROM search_by_vector(('[{literal}' || repeat(',1', 1023)"
                   " || ']')::vector)").fetchall()
    assert "not allowed in vector" in str(err.value)


# -- models ------------------------------------------------------------------------------

def test_vectors_of_another_model_are_never_compared(search_db, collection):
    with connect(search_db, autocommit=True) as conn:
        conn.execute("SELECT register_model('test/small', 8, 'test')")
        # give three paintings an 8-d vector of the second model
        for i in (1, 2, 3):
            v = np.zeros(8, np.float32)
            v[i] = 1
            conn.execute(
                "INSERT INTO painting_embedding (painting_id, model, embedding)"
                " SELECT painting_id, 'test/small', %s FROM painting WHERE image_file = %s",
                (np.concatenate([v, np.zeros(1016, np.float32)]), f"syn-{i:06d}.jpg"))
        q8 = np.zeros(8, np.float32)
        q8[2] = 1
        rows = conn.execute("SELECT image_file FROM search_by_vector(%s, k => 10,"
                            " model => 'test/small')", (q8,)).fetchall()
        assert [r[0] for r in rows][0] == "syn-000002.jpg"
        assert {r[0] for r in rows} == {"syn-000001.jpg", "syn-000002.jpg", "syn-000003.jpg"}
        # a 1024-d vector of the first model is not an 8-d query of the second
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT * FROM search_by_vector(%s::vector(16), model => 'test/small')",
                         (np.ones(16, np.float32),)).fetchall()
        assert err.value.sqlstate == "PGA01"
        # the active model is unchanged by registering a second one
        active = conn.execute("SELECT name FROM embedding_model WHERE is_active").fetchone()
        assert active[0] == MODEL


def test_switching_the_active_model_is_one_statement(make_database):
    url = make_database()
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT register_model('a/1', 4)")
        conn.execute("SELECT register_model('b/1', 4)")
        assert conn.execute("SELECT name FROM embedding_model WHERE is_active").fetchall() == [("a/1",)]
        conn.execute("SELECT use_model('b/1')")
        assert conn.execute("SELECT name FROM embedding_model WHERE is_active").fetchall() == [("b/1",)]
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT use_model('c/1')")
        assert err.value.sqlstate == "PGA04"


def test_switching_back_and_forth_among_models_in_any_row_order(make_database):
    # the rows move around the heap as they are updated; whichever the UPDATE meets first,
    # exactly one model is active after every switch
    url = make_database()
    with connect(url, autocommit=True) as conn:
        for name in ("a/1", "b/1", "c/1"):
            conn.execute("SELECT register_model(%s, 4)", (name,))
        for name in ("c/1", "a/1", "b/1", "a/1", "c/1", "b/1", "b/1", "a/1"):
            conn.execute("SELECT use_model(%s)", (name,))
            active = conn.execute("SELECT name FROM embedding_model WHERE is_active").fetchall()
            assert active == [(name,)]


def test_searching_before_any_model_exists_says_what_to_do(make_database):
    url = make_database()
    with connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT * FROM search_by_vector(%s)", (np.ones(1024, np.float32),))
        assert err.value.sqlstate == "PGA04"
        assert "pgallery load" in err.value.diag.message_hint


# -- text and hybrid -----------------------------------------------------------------------

def test_search_by_text_needs_the_prompt_embedded_first(db):
    with pytest.raises(psycopg.Error) as err:
        db.execute("SELECT * FROM search_by_text('never embedded prompt')").fetchall()
    assert err.value.sqlstate == "PGA05"
    assert "pgallery search text" in err.value.diag.message_hint


def test_search_by_text_uses_the_cached_prompt_vector(db, collection):
    q = queries_near(collection, 1, seed=21)[0]
    db.execute("SELECT store_prompt_embedding('a lighthouse in a storm', %s)", (q,))
    by_text = db.execute("SELECT image_file FROM search_by_text('a lighthouse in a storm',"
                         " k => 5, exact => true)").fetchall()
    by_vector = db.execute("SELECT image_file FROM search_by_vector(%s, k => 5, exact => true)",
                           (q,)).fetchall()
    assert by_text == by_vector


def test_hybrid_search_fuses_keyword_and_semantic_rankings(db, collection):
    # The prompt's vector points at painting 5; its words match the lighthouse descriptions.
    db.execute("SELECT store_prompt_embedding('stormy lighthouse', %s)", (collection.vectors[5],))
    rows = db.execute("SELECT image_file, distance, score FROM search_hybrid('stormy lighthouse',"
                      " k => 10)").fetchall()
    got = [r[0] for r in rows]
    assert got[0] in ("syn-000005.jpg", "syn-000000.jpg")   # best of one list, tied on RRF
    assert "syn-000005.jpg" in got                           # semantic top hit
    lighthouse = {r.image_file for r in collection.records if "lighthouse" in r.description}
    assert lighthouse & set(got)                             # keyword hits made it in
    scores = [r[2] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_hybrid_without_a_prompt_vector_falls_back_to_keywords_with_a_notice(db):
    notices = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary))
    rows = db.execute("SELECT image_file, distance FROM search_hybrid('lighthouse', k => 5)"
                      ).fetchall()
    assert len(rows) == 5
    assert all(r[1] is None for r in rows)
    assert any("keyword ranking only" in n for n in notices)


# -- recall knobs --------------------------------------------------------------------------

def test_ef_search_can_be_set_per_call_or_per_session(db, collection):
    q = queries_near(collection, 1, seed=17)[0]
    low = db.execute("SELECT image_file FROM search_by_vector(%s, k => 10, ef_search => 10)",
                     (q,)).fetchall()
    assert len(low) == 10
    db.execute("SET pgallery.exact_search = on")
    session_exact = files(db.execute("SELECT * FROM search_by_vector(%s, k => 10)", (q,)).fetchall())
    db.execute("RESET pgallery.exact_search")
    assert session_exact == collection.exact_top_k(q, 10)
    # the function's own settings do not leak into the session
    assert db.execute("SHOW hnsw.ef_search").fetchone()[0] == str(EF_SEARCH_FLOOR)


def test_ivfflat_index_is_built_from_the_row_count_and_used_with_probes(search_db, collection):
    with connect(search_db, autocommit=True) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("CALL build_ivfflat_index()")
        assert any(f"with {N // 1000} lists" in n for n in notices)
        q = queries_near(collection, 1, seed=19)[0]
        rows = conn.execute("SELECT image_file FROM search_by_vector(%s, k => 10, probes => 20)",
                            (q,)).fetchall()
        assert len(rows) == 10
        conn.execute("CALL drop_ivfflat_index()")
        assert conn.execute("SELECT to_regclass('painting_embedding_ivfflat')").fetchone()[0] is None


# -- the date parser behind year filters ---------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1876", "[1876,1877)"), ("c. 1650", "[1650,1651)"), ("1630-35", "[1630,1636)"),
    ("1505-1510", "[1505,1511)"), ("1490/95", "[1490,1496)"), ("16th century", "[1501,1601)"),
    ("-", None), ("", None), ("unknown", None),
])
def test_parse_year_range_reads_semart_dates(db, text, expected):
    assert db.execute("SELECT parse_year_range(%s)::text", (text,)).fetchone()[0] == expected
