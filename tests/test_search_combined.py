"""Composed queries (issue 14, part 1): search_combined() from SQL as a psql user calls it,
and `pgallery search query` from the CLI, against exact numpy answers computed from the
stored vectors themselves."""

from __future__ import annotations

import json
import shutil

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from pgallery.commands import app
from pgallery.database import connect
from pgallery.query_syntax import QuerySyntaxError, parse_query
from synthetic import load_collection, make_collection

N = 3000
MODEL = "test/synthetic"
runner = CliRunner()


@pytest.fixture(scope="module")
def collection():
    return make_collection(N, seed=14, prefix="cmb")


@pytest.fixture(scope="module")
def url(make_database, collection):
    url = make_database(prefix="combined")
    with connect(url) as conn:
        load_collection(conn, collection, MODEL)
    with connect(url, autocommit=True) as conn:
        rng = np.random.default_rng(3)
        for prompt in ("stormy sea", "people"):
            conn.execute("SELECT store_prompt_embedding(%s, %s)",
                         (prompt, rng.standard_normal(1024).astype(np.float32)))
    return url


@pytest.fixture
def db(url):
    conn = connect(url, autocommit=True)
    yield conn
    conn.close()


def stored(db, image_file: str) -> np.ndarray:
    return array(db.execute(
        "SELECT e.embedding FROM painting_embedding e JOIN painting p USING (painting_id)"
        " WHERE p.image_file = %s", (image_file,)).fetchone()[0])


def prompt(db, text: str) -> np.ndarray:
    return array(db.execute("SELECT prompt_vector(%s, %s)", (text, MODEL)).fetchone()[0])


def array(v) -> np.ndarray:
    """A vector as read back (pgvector's Vector) as float64."""
    return np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float64)


def unit(v):
    v = array(v)
    return v / np.linalg.norm(v)


_MATRICES: dict[str, tuple[list[str], np.ndarray]] = {}


def stored_matrix(db) -> tuple[list[str], np.ndarray]:
    """Every stored vector as read back from the database, unit length, with its image
    file; read once per database (the tests do not change the vectors)."""
    if db.info.dbname not in _MATRICES:
        rows = db.execute("SELECT p.image_file, e.embedding FROM painting_embedding e"
                          " JOIN painting p USING (painting_id) ORDER BY p.image_file"
                          ).fetchall()
        matrix = np.stack([array(r[1]) for r in rows])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        _MATRICES[db.info.dbname] = ([r[0] for r in rows], matrix)
    return _MATRICES[db.info.dbname]


def exact_top(db, collection, query, k, exclude=(), **filters) -> list[str]:
    """The k nearest by cosine among the stored vectors (read back from the database),
    leaving out ``exclude``, among those passing the filters."""
    names, matrix = stored_matrix(db)
    distance = 1 - matrix @ unit(query)
    passing = {r.image_file for r, ok in zip(collection.records, collection.mask(**filters))
               if ok}
    order = sorted((d, n) for d, n in zip(distance, names)
                   if n not in exclude and n in passing)
    return [n for _, n in order[:k]]


def files(rows):
    return [r[1] for r in rows]


A, B, C = "cmb-000010.jpg", "cmb-000020.jpg", "cmb-000777.jpg"


def composed(db):
    """2 * A + B - 0.5 * C - prompt 'people' + prompt 'stormy sea', each term unit first."""
    return (2 * unit(stored(db, A)) + unit(stored(db, B)) - 0.5 * unit(stored(db, C))
            - unit(prompt(db, "people")) + unit(prompt(db, "stormy sea")))


CALL = ("SELECT * FROM search_combined(paintings => ARRAY[%s, %s, %s],"
        " painting_weights => ARRAY[2, 1, -0.5], prompts => ARRAY['stormy sea'],"
        " negative_prompts => ARRAY['people'], k => %s{extra})")


def test_exact_mode_equals_the_exact_top_10_of_the_composed_vector(db, collection):
    rows = db.execute(CALL.format(extra=", exact => true"), (A, B, C, 10)).fetchall()
    assert files(rows) == exact_top(db, collection, composed(db), 10, exclude={A, B, C})
    # distances are to the composed vector
    q = unit(composed(db))
    v = unit(stored(db, rows[0][1]))
    assert rows[0][9] == pytest.approx(1 - v @ q, abs=1e-5)


def test_default_ann_search_has_recall_at_least_095(db, collection):
    hits = total = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        a, b = (f"cmb-{i:06d}.jpg" for i in rng.choice(N, 2, replace=False))
        rows = db.execute("SELECT * FROM search_combined(paintings => ARRAY[%s, %s],"
                          " negative_prompts => ARRAY['people'])", (a, b)).fetchall()
        truth = exact_top(db, collection, unit(stored(db, a)) + unit(stored(db, b))
                          - unit(prompt(db, "people")), 10, exclude={a, b})
        hits += len(set(files(rows)) & set(truth))
        total += 10
    assert hits / total >= 0.95


def test_filters_apply_and_named_paintings_stay_out_even_when_nearest(db, collection):
    # A itself is the nearest painting to a query made mostly of A: it must not come back
    rows = db.execute("SELECT * FROM search_combined(paintings => ARRAY[%s, %s],"
                      " painting_weights => ARRAY[5, 1], school => 'dutch', k => 10,"
                      " exact => true)", (A, B)).fetchall()
    query = 5 * unit(stored(db, A)) + unit(stored(db, B))
    assert files(rows) == exact_top(db, collection, query, 10, exclude={A, B}, school="dutch")
    assert A not in files(rows)


def test_pages_of_a_several_painting_query_are_the_exact_ranking_in_slices(db, collection):
    pages = []
    for page in (1, 2, 3):
        pages += files(db.execute(CALL.format(extra=", page => %s, exact => true"),
                                  (A, B, C, 5, page)).fetchall())
    assert pages == exact_top(db, collection, composed(db), 15, exclude={A, B, C})
    by_date = db.execute(CALL.format(extra=", order_by => 'date', exact => true"),
                         (A, B, C, 5)).fetchall()
    assert sorted(files(by_date)) == sorted(pages[:5])


def test_one_painting_is_search_by_image(db):
    assert files(db.execute("SELECT * FROM search_combined(paintings => ARRAY[%s],"
                            " exact => true)", (A,)).fetchall()) == \
        files(db.execute("SELECT * FROM search_by_image(%s, exact => true)", (A,)).fetchall())


def test_raw_vectors_and_negative_vectors(db, collection):
    rng = np.random.default_rng(9)
    v, w = rng.standard_normal(1024), rng.standard_normal(1024) * 7
    rows = db.execute("SELECT * FROM search_combined(vectors => ARRAY[%s::vector],"
                      " vector_weights => ARRAY[3], negative_vectors => ARRAY[%s::vector],"
                      " exact => true)",
                      (str(v.tolist()), str(w.tolist()))).fetchall()
    assert files(rows) == exact_top(db, collection, 3 * unit(v) - unit(w), 10)


@pytest.mark.parametrize("call, sqlstate", [
    ("paintings => ARRAY['cmb-000010.jpg'], negative_paintings => ARRAY['cmb-000010.jpg']",
     "PGA08"),                                                      # cancels out
    ("paintings => ARRAY['cmb-000010.jpg', 'cmb-000010.jpg'],"
     " painting_weights => ARRAY[1, -1]", "PGA08"),
    ("paintings => ARRAY['cmb-000010.jpg'], painting_weights => ARRAY['NaN'::real]", "PGA08"),
    ("paintings => ARRAY['cmb-000010.jpg'], painting_weights => ARRAY[0]", "PGA08"),
    ("paintings => ARRAY['nope.jpg']", "PGA03"),
    ("prompts => ARRAY['never embedded']", "PGA05"),
    ("", "PGA06"),                                                  # no terms
    ("paintings => ARRAY['cmb-000010.jpg'], painting_weights => ARRAY[1, 2]", "PGA06"),
    ("vectors => ARRAY['[0, 0, 0]'::vector]", "PGA01"),
])
def test_bad_queries_raise_pgallery_errors(db, call, sqlstate):
    with pytest.raises(psycopg.Error) as info:
        db.execute(f"SELECT * FROM search_combined({call})").fetchall()
    assert info.value.sqlstate == sqlstate


# -- the expression syntax ------------------------------------------------------------------

def test_the_syntax_of_the_issue_parses_into_signed_weighted_terms():
    terms = parse_query('2:"stormy sea" + @00015-shipwreck.jpg + ./boat.jpg - "people"')
    assert [(t.kind, t.value, t.weight) for t in terms] == [
        ("prompt", "stormy sea", 2.0), ("painting", "00015-shipwreck.jpg", 1.0),
        ("image", "./boat.jpg", 1.0), ("prompt", "people", -1.0)]
    terms = parse_query("-0.5:@\"a b.jpg\" + [1, 2.5] - https://x.org/a-b.jpg")
    assert [(t.kind, t.value, t.weight) for t in terms] == [
        ("painting", "a b.jpg", -0.5), ("vector", [1.0, 2.5], 1.0),
        ("image", "https://x.org/a-b.jpg", -1.0)]


@pytest.mark.parametrize("expression, position, message", [
    ('"a" "b"', 4, "expected + or -"),
    ('"stormy sea', 0, "never closed"),
    ('@a.jpg +', 8, "must follow"),
    ('2 "x"', 1, "needs a colon"),
    ('2:', 2, "missing"),
    ('"a" + @', 7, "@ needs"),
    ('[1, "x"]', 0, "numbers"),
    ('   ', 3, "empty"),
    ('"a" + ""', 6, "prompt is empty"),
])
def test_parse_errors_point_at_the_offending_term(expression, position, message):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(expression)
    assert info.value.position == position
    lines = str(info.value).splitlines()
    assert message in lines[0]
    assert lines[2].index("^") - 2 == position      # under the place, past the 2-space indent


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list('@"\'[]:+-. 0123456789eE,ab\\\t')) ,
               max_size=30) | st.text(max_size=30))
def test_any_text_parses_or_is_a_pointed_syntax_error(expression):
    try:
        terms = parse_query(expression)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(expression)
        assert str(exc).splitlines()[-1].strip() == "^"
    else:
        assert terms and all(t.kind in ("prompt", "painting", "image", "vector")
                             and t.weight == t.weight for t in terms)


# -- the CLI, on real images embedded by the local provider ---------------------------------

@pytest.fixture(scope="module")
def gallery(make_database, tmp_path_factory):
    from conftest import REAL_GALLERY
    if not (REAL_GALLERY / "images").is_dir():
        pytest.skip(f"the real-image test data is not at {REAL_GALLERY}")
    root = tmp_path_factory.mktemp("combined-gallery")
    images = root / "images"
    images.mkdir()
    for path in sorted((REAL_GALLERY / "images").glob("*.jpg"))[::25]:
        shutil.copy(path, images / path.name)
    url = make_database(prefix="combinedcli")
    result = runner.invoke(app, ["--database-url", url, "load", "--folder", str(images),
                                 "--provider", "local"])
    assert result.exit_code == 0, result.output
    query_image = root / "query.jpg"
    with Image.open(next(iter(sorted(images.iterdir())))) as image:
        image.convert("RGB").resize((100, 90)).save(query_image, quality=70)
    return url, root, query_image


def test_cli_query_equals_the_exact_answer_from_the_stored_vectors(gallery, monkeypatch):
    url, root, query_image = gallery
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(root)
    with connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT p.image_file, e.embedding FROM painting_embedding e"
                            " JOIN painting p USING (painting_id)").fetchall()
    vectors = {name: unit(v) for name, v in rows}
    a, b = sorted(vectors)[3], sorted(vectors)[7]
    from pgallery.providers.local import LocalDescriptorProvider
    new = unit(LocalDescriptorProvider().embed_image(query_image))
    query = unit(2 * vectors[a] + new - 0.5 * vectors[b])
    truth = sorted((1 - v @ query, n) for n, v in vectors.items() if n not in (a, b))
    result = runner.invoke(app, ["search", "query", f"2:@{a} + ./query.jpg - 0.5:@{b}",
                                 "--exact", "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert [r["image_file"] for r in got] == [n for _, n in truth[:5]]
    assert got[0]["similarity"] == pytest.approx(1 - truth[0][0], abs=1e-5)

    page = root / "query.html"
    result = runner.invoke(app, ["search", "query", f"@{a}", "--html", str(page), "--k", "3"])
    assert result.exit_code == 0, result.output
    assert page.read_text().count('class="card"') == 3


@pytest.mark.parametrize("expression, message", [
    ('"a" "b"', "expected + or - between terms"),
    ("@a.jpg + ./missing.jpg", "no such file"),
    ('"a stormy sea"', "text"),                         # the local provider has no text
    ("@unknown.jpg", "no painting with image_file"),
])
def test_cli_errors_are_short_messages_with_an_exit_code(gallery, monkeypatch, expression,
                                                         message):
    url, root, _ = gallery
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(root)
    result = runner.invoke(app, ["search", "query", expression])
    assert result.exit_code in (2, 3, 5), result.output
    assert message in result.output
    assert "Traceback" not in result.output
