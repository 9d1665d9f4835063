"""The search vocabulary, declared once: every filter, search parameter and result column.

Each entry says what a thing is called in each place it appears, and what values it takes:

    sql    the SQL functions' argument name (sql/idempotent/_search_parameters.sql)
    api    its name in a URL, a form, the JSON API and ``Gallery.search(...)``
    flag   the CLI option
    type   str, int, float or bool; ``low``/``high`` bound numbers, ``max_length`` and
           ``pattern`` (a regular expression the whole value matches) bound text
    help   the CLI's help line; ``label`` and ``words`` what the web page and an empty
           result's explanation call it

Everything else is built from these tuples: ``SearchFilters`` (below), the CLI's options
(commands/common.py), the web's URL parsing and its filter form (web/query.py,
templates/base.html), the JSON keys of a result, and the named-argument list of each SQL
call (search.py). tests/test_vocabulary.py checks them against the database's own catalog
(the arguments of search_by_vector and the columns of search_result), so a migration that
adds an argument without an entry here fails a test. docs/adding-a-filter.md says how to
add a filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, make_dataclass

from pgallery.errors import FilterError

INT4_MIN, INT4_MAX = -2**31, 2**31 - 1  # PostgreSQL's integer


@dataclass(frozen=True)
class Param:
    """One search parameter or filter, named for every place it appears."""

    sql: str
    type: type
    help: str
    api: str = ""                  # default: the SQL name
    flag: str = ""                 # default: --sql-name
    low: float | None = None
    high: float | None = None
    max_length: int | None = None  # characters, for text
    pattern: str = ""              # a regular expression the whole text matches (anchored)
    default: object = None
    label: str = ""                # the web form's label
    words: str = ""                # "school contains": how an explanation names it
    widget: str = "text"           # the web form's input: text, suggest, choices, number
    web: bool = True               # taken from URLs and forms by `pgallery serve`
    metavar: str | None = None
    cli_default: object = None

    def __post_init__(self):
        if not self.api:
            object.__setattr__(self, "api", self.sql)
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.sql.replace("_", "-"))

    def check(self, value):
        """``value`` if it is within this parameter's limits, else FilterError naming it."""
        if value is None:
            return None
        if self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise FilterError(f"{self.api} must be a whole number, got {value!r}")
        if self.type is float and (isinstance(value, bool)
                                   or not isinstance(value, (int, float))):
            raise FilterError(f"{self.api} must be a number, got {value!r}")
        if self.type is str and not isinstance(value, str):
            raise FilterError(f"{self.api} must be text, got {value!r}")
        if self.low is not None and value < self.low or \
                self.high is not None and value > self.high:
            raise FilterError(f"{self.api} must be between {_num(self.low)} and "
                              f"{_num(self.high)}, got {value}")
        if self.type is not str:
            return value
        if self.max_length is not None and len(value) > self.max_length:
            raise FilterError(f"{self.api} is longer than {self.max_length} characters")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise FilterError(f"{self.api} must match {self.pattern}, got {value[:40]!r}")
        return value


def _num(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# The metadata filters, in the SQL's order. None = no filter (the SQL's NULL).
FILTERS: tuple[Param, ...] = (
    Param("author", str, "Author contains this (case-insensitive): 'gogh' matches 'GOGH, "
          "Vincent van'.", label="Author", words="author contains", widget="suggest"),
    Param("technique", str, "Technique contains this.", label="Technique",
          words="technique contains", widget="suggest"),
    Param("school", str, "School contains this ('dutch').", label="School",
          words="school contains", widget="suggest"),
    Param("painting_type", str, "Type is exactly this, any case ('portrait', 'landscape').",
          api="type", flag="--type", label="Type", words="type is", widget="choices"),
    Param("timeframe", str, "Timeframe is exactly this ('1601-1650').", label="Timeframe",
          words="timeframe is", widget="choices"),
    Param("year_from", int, "Painted in or after this year (on the parsed date range).",
          low=INT4_MIN, high=INT4_MAX, label="From year", words="painted in or after",
          widget="number"),
    Param("year_to", int, "Painted in or before this year.", low=INT4_MIN, high=INT4_MAX,
          label="To year", words="painted in or before", widget="number"),
)

# The database default hnsw.ef_search never goes below this: migration 0002's default, and
# the floor of recommended_ef_search() that loads tune it with. The SQL keeps its own copies
# (see tests/test_search_defaults.py, which checks the database agrees with this one).
EF_SEARCH_FLOOR = 100
ORDERS = ("similarity", "date", "date_desc")

# What every search_* function takes besides its query and the filters, in the SQL's order.
K = Param("k", int, "How many results.", low=1, high=10000, default=10, cli_default=10)
MODEL = Param("model", str, "Search this model's vectors. [default: the active model]",
              web=False)
EF_SEARCH = Param("ef_search", int, "HNSW candidate list size (recall vs speed). [default: "
                  "the database's hnsw.ef_search, sized to the collection: "
                  f"{EF_SEARCH_FLOOR}, 150 at 1M]", low=1, high=1000, web=False)
PROBES = Param("probes", int, "IVFFlat lists to visit, when an IVFFlat index is used.",
               low=1, high=INT4_MAX, web=False)
EXACT = Param("exact", bool, "Exact search, no ANN index.", web=False, cli_default=False)
MIN_SIMILARITY = Param("min_similarity", float, "Only results with a similarity of at "
                       "least S (still best first, at most --k).", low=-1, high=1,
                       metavar="S", web=False)
ORDER = Param("order_by", str, "similarity (default), date or date_desc: the same k best "
              "results by the first year of their date, unknown years last.", api="order",
              flag="--order", metavar="ORDER", web=False)
PAGE = Param("page", int, "Page n of the ranking: results (n-1)*k+1 .. n*k.", low=1,
             high=INT4_MAX)
OPTIONS: tuple[Param, ...] = (K, MODEL, EF_SEARCH, PROBES, EXACT, MIN_SIMILARITY, ORDER, PAGE)

# Every argument a search_* function takes after its query, in the SQL's order.
PARAMETERS: tuple[Param, ...] = (K, *FILTERS, *OPTIONS[1:])
BY_API = {p.api: p for p in PARAMETERS}
BY_SQL = {p.sql: p for p in PARAMETERS}


@dataclass(frozen=True)
class Column:
    """One column of a search result: the SQL's name, the JSON's, and its Python type."""

    sql: str
    type: type
    api: str = ""
    web: bool = True      # in the web API's result objects

    def __post_init__(self):
        if not self.api:
            object.__setattr__(self, "api", self.sql)


# The columns of SQL's search_result, in order (what every search_* function returns).
RESULT_COLUMNS: tuple[Column, ...] = (
    Column("painting_id", int, web=False), Column("image_file", str), Column("title", str),
    Column("author", str), Column("technique", str), Column("painting_type", str, "type"),
    Column("school", str), Column("timeframe", str), Column("date", str),
    Column("distance", float), Column("similarity", float), Column("score", float),
)


def _filters_post_init(self):
    for param in FILTERS:
        param.check(getattr(self, param.sql))


def _active(self) -> dict:
    """The filters that are set, by SQL name (what a statement binds)."""
    return {param.sql: value for param in FILTERS
            if (value := getattr(self, param.sql)) is not None}


def _by_api(self) -> dict:
    """The filters that are set, by their URL/API name."""
    return {param.api: value for param in FILTERS
            if (value := getattr(self, param.sql)) is not None}


# Metadata filters; None means "no filter" (the SQL functions' NULL). A frozen dataclass
# with one field per entry of FILTERS, in that order: SearchFilters(school="italian").
SearchFilters = make_dataclass(
    "SearchFilters", [(p.sql, p.type | None, field(default=None)) for p in FILTERS],
    frozen=True,
    namespace={"__post_init__": _filters_post_init, "active": _active, "by_api": _by_api,
               "__doc__": "Metadata filters; None means no filter (the SQL's NULL)."})
SearchFilters.__module__ = __name__


def filters_from_api(values: dict) -> "SearchFilters":
    """SearchFilters from API names (``type``, ``year_from``...); unknown names are refused."""
    unknown = set(values) - {p.api for p in FILTERS}
    if unknown:
        raise FilterError(f"unknown filter {sorted(unknown)[0]!r}; the filters are "
                          + ", ".join(p.api for p in FILTERS))
    by_api = {p.api: p.sql for p in FILTERS}
    return SearchFilters(**{by_api[name]: value for name, value in values.items()})
