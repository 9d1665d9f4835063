"""The search vocabulary (pgallery/vocabulary.py) agrees with the database's own catalog,
and every front end is built from it: a migration that adds a search argument or a result
column without declaring it fails here."""

from __future__ import annotations

import dataclasses

import pytest
from typer import main as typer_main

from pgallery import vocabulary
from pgallery.commands import app
from pgallery.search import search_statement
from pgallery.vocabulary import FILTERS, PARAMETERS, RESULT_COLUMNS, SearchFilters

PG_TYPES = {str: "text", int: "integer", float: "double precision", bool: "boolean"}
SEARCH_FUNCTIONS = ("search_by_vector", "search_by_image", "search_by_text", "search_hybrid",
                    "search_combined")


def _arguments(conn, function: str) -> list[tuple[str, str]]:
    """(name, type) of a function's input arguments, from pg_proc."""
    row = conn.execute(
        "SELECT p.proargnames, array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t)"
        " FROM pg_proc p WHERE p.proname = %s AND p.pronamespace = current_schema()::regnamespace",
        (function,)).fetchall()
    assert len(row) == 1, f"{function}: {len(row)} overloads"
    names, types = row[0]
    return list(zip(names, types))


def test_every_search_function_takes_the_declared_parameters_in_order(conn):
    declared = [(p.sql, PG_TYPES[p.type]) for p in PARAMETERS]
    for function in SEARCH_FUNCTIONS:
        arguments = _arguments(conn, function)
        names = [name for name, _ in arguments]
        start = names.index("k")
        assert arguments[start:start + len(declared)] == declared, function


def test_search_result_has_the_declared_columns_in_order(conn):
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = 'search_result'::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum").fetchall()
    assert rows == [(c.sql, {int: "bigint", str: "text", float: "double precision"}[c.type])
                    for c in RESULT_COLUMNS]


def test_search_request_and_near_duplicates_take_every_filter(conn):
    fields = [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = 'search_request'::regclass"
        " AND a.attnum > 0 ORDER BY a.attnum").fetchall()]
    assert fields == [p.sql for p in PARAMETERS]
    names = [name for name, _ in _arguments(conn, "near_duplicates")]
    assert [n for n in names if n in {p.sql for p in FILTERS}] == [p.sql for p in FILTERS]


def test_search_filters_is_one_field_per_declared_filter():
    assert [f.name for f in dataclasses.fields(SearchFilters)] == [p.sql for p in FILTERS]


def test_the_sql_argument_list_follows_the_declaration_and_binds_every_value():
    statement, args = search_statement(
        "text", "sea", k=3, filters=SearchFilters(year_to=1700, author="gogh"), model="m")
    assert statement == ("SELECT * FROM search_by_text(prompt => %(prompt)s, k => %(k)s, "
                         "author => %(author)s, year_to => %(year_to)s, model => %(model)s)")
    assert args == {"prompt": "sea", "k": 3, "author": "gogh", "year_to": 1700, "model": "m"}


def test_every_search_command_has_one_option_per_declared_parameter():
    command = typer_main.get_command(app).commands["search"]
    for name in ("painting", "text", "new-image", "vector", "query"):
        flags = {opt for p in command.commands[name].params for opt in p.opts}
        assert {p.flag for p in PARAMETERS} <= flags, name


def test_the_web_parses_every_declared_filter_by_its_api_name():
    from pgallery.web.query import FILTER_FIELDS, SearchRequest

    assert FILTER_FIELDS == {p.api: p.sql for p in FILTERS}
    request = SearchRequest.from_params({"type": "landscape", "year_from": "1600"})
    assert request.filters == SearchFilters(painting_type="landscape", year_from=1600)


def test_the_web_form_has_a_field_per_declared_filter():
    from pgallery.web.app import templates
    from pgallery.web.query import SearchRequest

    template = templates.env.get_template("base.html")
    html = template.render(req=SearchRequest(filters=SearchFilters(school="dutch")),
                           choices={"type": ["landscape"], "timeframe": []},
                           filter_fields=list(FILTERS), version="x", max_upload_mb=1,
                           path_of=str, model=None)
    for p in FILTERS:
        assert f'name="{p.api}"' in html, p.api
    assert 'name="school" list="school-values" data-suggest="school"' in html
    assert 'value="dutch"' in html and '<datalist id="author-values">' in html


@pytest.mark.parametrize("value", [0, 10001, True, "3"])
def test_a_value_outside_a_parameters_limits_names_the_parameter(value):
    with pytest.raises(vocabulary.FilterError, match="^k must be"):
        vocabulary.K.check(value)
