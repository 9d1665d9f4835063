"""The statements that call the SQL search functions, and running them. No search logic
lives here: every ranking is SQL's, and the search flow (flow.py, which Gallery and the web
app drive) decides which statement a search sends.

    from pgallery.database import connect
    from pgallery.search import SearchFilters, run_search
    rows = run_search(connect(), "image", "00015-shipwreck-on-a-rocky-coast.jpg", k=5,
                      filters=SearchFilters(school="italian"))
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import psycopg
from psycopg.rows import dict_row

import pgallery.vocabulary as vocabulary
from pgallery.errors import FilterError, from_database_error
from pgallery.vocabulary import (EF_SEARCH_FLOOR, INT4_MAX, INT4_MIN, ORDERS,  # noqa: F401
                                 SearchFilters)

RESULT_COLUMNS = tuple(column.sql for column in vocabulary.RESULT_COLUMNS)


_FIELDS: dict[type, tuple[str, ...]] = {}


def given(options) -> dict:
    """A dataclass's fields that are not None (its values as they are: dataclasses.asdict
    deep-copies every one, a cost the web server paid three times a request)."""
    names = _FIELDS.get(type(options))
    if names is None:
        names = _FIELDS[type(options)] = tuple(f.name for f in fields(options))
    return {name: value for name in names if (value := getattr(options, name)) is not None}


@dataclass(frozen=True)
class RecallSettings:
    """Per-call recall knobs; None = the session's setting (see sql/idempotent/01_settings.sql)."""

    ef_search: int | None = None
    probes: int | None = None
    exact: bool | None = None


@dataclass(frozen=True)
class ResultOptions:
    """Which rows of the ranking come back and in what order (the SQL's min_similarity,
    order_by, page); None = the function's default."""

    min_similarity: float | None = None   # only rows at or above it
    order_by: str | None = None           # 'similarity', 'date' or 'date_desc'
    page: int | None = None               # 1-based: rows (page-1)*k+1 .. page*k

    def __post_init__(self):
        if self.order_by is not None and self.order_by not in ORDERS:
            raise FilterError(f"order must be one of {', '.join(ORDERS)}, got {self.order_by!r}")
        if self.page is not None and not 1 <= self.page <= INT4_MAX:
            raise FilterError(f"page must be 1 or more, got {self.page}")
        if self.min_similarity is not None and not -1 <= self.min_similarity <= 1:
            raise FilterError(f"min-similarity must be between -1 and 1, got "
                              f"{self.min_similarity}")


# The SQL function each kind of search calls, and the name of its first argument.
FUNCTIONS = {
    "vector": ("search_by_vector", "query_embedding"),
    "image": ("search_by_image", "image_file"),
    "text": ("search_by_text", "prompt"),
    "hybrid": ("search_hybrid", "prompt"),
    "colour": ("search_by_colour", "colours"),     # '#rrggbb[:weight]' strings
}


def search_statement(kind: str, query, *, k: int = 10, filters: SearchFilters | None = None,
                     model: str | None = None, recall: RecallSettings | None = None,
                     result: ResultOptions | None = None) -> tuple[str, dict]:
    """(statement, arguments) that call search_<kind> with named arguments.

    The statement text is fixed (function and argument names come from FUNCTIONS and the
    dataclasses above, never from the user); every value is a bound parameter.
    """
    function, first = FUNCTIONS[kind]
    args = {first: query, **arguments(k, filters, model, recall, result)}
    named = _named(args)
    if isinstance(query, np.ndarray):
        args[first] = query.astype(np.float32)
    return f"SELECT * FROM {function}({named})", args


def arguments(k: int | None = None, filters: SearchFilters | None = None,
              model: str | None = None, recall: RecallSettings | None = None,
              result: ResultOptions | None = None) -> dict:
    """The arguments that are set, by SQL name, in the SQL's order (vocabulary.PARAMETERS:
    k, the filters, model, the recall knobs, the result options): what follows a search
    function's query argument."""
    args = {} if k is None else {"k": k}
    if filters is not None:
        args.update(filters.active())
    if model is not None:
        args["model"] = model
    if recall is not None:
        args.update(given(recall))
    if result is not None:
        args.update(given(result))
    return args


def named_arguments(args: dict, casts: dict | None = None) -> str:
    """``name => %(name)s[::cast], ...`` for a call with named arguments: the names are the
    code's own (never the user's); every value stays a bound parameter."""
    casts = casts or {}
    return ", ".join(f"{name} => %({name})s{casts.get(name, '')}" for name in args)


_named = named_arguments


def run_search(conn: psycopg.Connection, kind: str, query, **options) -> list[dict]:
    """Call search_<kind> (see search_statement for the options); rows as dicts, best first."""
    return _fetch_rows(conn, *search_statement(kind, query, **options))


def fetch_statement(conn: psycopg.Connection, statement: str, args: dict, *,
                    one: bool = False):
    """One statement's rows as dicts (or its first row as a tuple, ``one``), the
    transaction ended either way and a database error turned into pgallery's own
    (errors.py). The search flow's sync driver runs every statement through it."""
    try:
        with conn.cursor(row_factory=None if one else dict_row) as cur:
            cur.execute(statement, args)
            answer = cur.fetchone() if one else cur.fetchall()
        if not conn.autocommit:
            conn.commit()
        return answer
    except psycopg.Error as exc:
        if not conn.autocommit:
            conn.rollback()
        raise from_database_error(exc) from None


def _fetch_rows(conn: psycopg.Connection, statement: str, args: dict) -> list[dict]:
    return fetch_statement(conn, statement, args)


def cache_prompt(conn: psycopg.Connection, prompt: str, vector, model: str | None = None) -> None:
    """Store a prompt's embedding so SQL's search_by_text(prompt) can answer it."""
    try:
        with conn.transaction():
            conn.execute("SELECT store_prompt_embedding(%s, %s, %s)",
                         (prompt, np.asarray(vector, dtype=np.float32), model))
    except psycopg.Error as exc:
        raise from_database_error(exc) from None


def _vector_text(vector) -> str:
    """A vector as pgvector's text form (vector[] parameters are sent as text[] and cast)."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


def combined_statement(*, paintings=(), painting_weights=(), prompts=(), prompt_weights=(),
                       vectors=(), vector_weights=(), colours=(), k: int = 10,
                       filters: SearchFilters | None = None, model: str | None = None,
                       recall: RecallSettings | None = None,
                       result: ResultOptions | None = None) -> tuple[str, dict]:
    """(statement, arguments) that call search_combined (sql/idempotent/24_search_combined.sql)
    with the terms of each kind and their signed weights (a negative weight subtracts the
    term) and the colours ('#rrggbb:weight'); like search_statement, the text is fixed and
    every value a bound parameter."""
    args: dict = {}
    for name, terms, weights in (("paintings", list(paintings), list(painting_weights)),
                                 ("prompts", list(prompts), list(prompt_weights))):
        if terms:
            args[name], args[name[:-1] + "_weights"] = terms, [float(w) for w in weights]
    if len(vectors):
        args["vectors"] = [_vector_text(v) for v in vectors]
        args["vector_weights"] = [float(w) for w in vector_weights]
    if colours:             # '#rrggbb:weight', the weight against the other terms'
        args["colours"] = list(colours)
    args.update(arguments(k, filters, model, recall, result))
    casts = {"vectors": "::vector[]", "painting_weights": "::real[]",
             "prompt_weights": "::real[]", "vector_weights": "::real[]"}
    return f"SELECT * FROM search_combined({_named(args, casts)})", args


def near_duplicates(conn: psycopg.Connection, *, min_similarity: float | None = None,
                    filters: SearchFilters | None = None,
                    model: str | None = None) -> list[dict]:
    """Call near_duplicates (sql/idempotent/25_near_duplicates.sql): one dict per painting
    in a group, groups in order (largest first), each group's central member first."""
    args: dict = {"min_similarity": min_similarity, "model": model,
                  **(filters or SearchFilters()).active()}
    casts = {"min_similarity": "::real", "model": "::text"}
    return _fetch_rows(conn, f"SELECT * FROM near_duplicates({_named(args, casts)})", args)
