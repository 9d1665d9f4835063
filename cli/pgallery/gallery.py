"""pgallery as a Python library: :class:`Gallery`, the one core the CLI and the web use.

    from pgallery import Gallery

    with Gallery() as gallery:              # the embedded database (or Gallery(url))
        gallery.migrate()
        gallery.load_semart("SemArt/semart.csv", "SemArt/Images")
        for r in gallery.search(similar="00015-shipwreck.jpg", k=5, school="dutch"):
            print(r.title, r.author, round(r.similarity, 3))
        gallery.search(text="a stormy sea").notices   # e.g. "ranked by keywords only: ..."

``search`` takes the web API's parameter names (vocabulary.py); the answer is a
:class:`Results`: a sequence of frozen :class:`Result` rows (one attribute per column of
SQL's search_result) that also carries the notices and, when filters left nothing, which
one. Bad input raises pgallery.errors' typed errors (ArgError, FilterError,
MismatchedDimension, ...). Every search runs the flow of flow.py, driven here on one
connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import make_dataclass, replace
from pathlib import Path

import psycopg

import pgallery.flow as flow
import pgallery.vocabulary as vocabulary
from pgallery.config import Settings
from pgallery.database import connect, resolve_url
from pgallery.errors import ArgError, PaintingNotFound
from pgallery.flow import EmptyReason, SearchOutcome, SearchParams, SearchState
from pgallery.palette import chips
from pgallery.search import RecallSettings, ResultOptions, SearchFilters

# One search result: a frozen dataclass with one attribute per column of SQL's
# search_result (vocabulary.RESULT_COLUMNS): r.image_file, r.title, r.similarity, ...
Result = make_dataclass("Result", [(c.sql, c.type | None) for c in vocabulary.RESULT_COLUMNS],
                        frozen=True, slots=True)
Result.__module__ = __name__
Result.__doc__ = "One search result: the columns of SQL's search_result, by name."

Duplicate = make_dataclass("Duplicate", [("group_id", int), ("painting_id", int),
                                         ("image_file", str), ("title", str | None),
                                         ("author", str | None), ("similarity", float)],
                           frozen=True, slots=True)
Duplicate.__module__ = __name__
Duplicate.__doc__ = "One painting of a near-duplicate group (SQL near_duplicates())."

# The names search() takes besides the vocabulary's: what to search by.
QUERY_NAMES = ("text", "similar", "image", "vector", "query", "colour")
EXTRA_NAMES = ("hybrid", "provider")
EMBEDDINGS_BATCH = 2000     # rows per transaction of an embeddings file


class Results(Sequence):
    """The rows of one search, best first, and what to know about them."""

    def __init__(self, outcome: SearchOutcome):
        self.outcome = outcome
        self.rows = [Result(**row) for row in outcome.rows]
        self.kind = outcome.kind           # the SQL search run: image, text, hybrid, ...
        self.model = outcome.model
        self.notices = list(outcome.notices)
        self.empty: EmptyReason | None = outcome.empty
        self.more = outcome.more

    @property
    def empty_because(self) -> str | None:
        """Which filter left nothing, in words; None unless filters emptied the search."""
        return self.empty.message() if self.empty else None

    def __getitem__(self, index):
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"<Results {self.kind}: {len(self)} row(s), model {self.model}>"


def search_params(**params) -> SearchParams:
    """SearchParams from the API's names (``type``, ``order``, ``year_from``, ...): unknown
    names and values out of their limits raise ArgError/FilterError."""
    unknown = set(params) - set(vocabulary.BY_API) - set(QUERY_NAMES) - set(EXTRA_NAMES)
    for name in ("text", "similar", "query", "provider"):
        if params.get(name) is not None and not isinstance(params[name], str):
            raise ArgError(f"{name} must be text, got {type(params[name]).__name__}")
    if params.get("image") is not None and not isinstance(
            params["image"], (str, Path, bytes, bytearray, memoryview)):
        raise ArgError("image must be a path, an http(s) URL or the image's bytes")
    if unknown:
        raise ArgError(f"unknown search parameter {sorted(unknown)[0]!r}; the parameters "
                       f"are {', '.join(QUERY_NAMES + tuple(vocabulary.BY_API))}")
    by_sql = {}
    for name, value in params.items():
        if name in vocabulary.BY_API and value is not None:
            param = vocabulary.BY_API[name]
            by_sql[param.sql] = param.check(value)
    filters = SearchFilters(**{p.sql: by_sql.get(p.sql) for p in vocabulary.FILTERS})
    if (filters.year_from is not None and filters.year_to is not None
            and filters.year_from > filters.year_to):
        raise vocabulary.FilterError(f"year_from ({filters.year_from}) is after year_to "
                                     f"({filters.year_to})")
    return SearchParams(
        text=params.get("text"), similar=params.get("similar"), image=params.get("image"),
        vector=params.get("vector"), query=params.get("query"),
        colour=params.get("colour"), filters=filters,
        k=by_sql.get("k", vocabulary.K.default), model=by_sql.get("model"),
        recall=RecallSettings(ef_search=by_sql.get("ef_search"), probes=by_sql.get("probes"),
                              exact=True if by_sql.get("exact") else None),
        result=ResultOptions(min_similarity=by_sql.get("min_similarity"),
                             order_by=by_sql.get("order_by"), page=by_sql.get("page")),
        hybrid=bool(params.get("hybrid")), provider=params.get("provider"))


class _Progress:
    """loading's Progress protocol over a ``callback(done, total)``."""

    def __init__(self, callback: Callable[[int, int | None], None]):
        self.callback, self.done, self.total = callback, 0, None

    def start(self, total: int | None, description: str | None = None) -> None:
        self.total, self.done = total, 0
        self.callback(0, total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.callback(self.done, self.total)


# Neither statement correlates a subquery with its painting or model: Citus (a sharded
# painting_embedding, docs/scale-out.md) runs a correlated subquery on a reference table's
# rows nowhere; an uncorrelated one, or a join on the painting, it runs on every shard.
PAINTING_SQL = """
SELECT p.painting_id, p.image_file, p.title, p.author, p.technique, p.date,
       lower(p.years) AS year_from, upper(p.years) - 1 AS year_to,
       p.painting_type, p.school, p.timeframe, p.description, p.image_uri,
       (SELECT array_agg(e.model ORDER BY e.model) FROM painting_embedding e
        JOIN painting named ON named.painting_id = e.painting_id
        WHERE named.image_file = %(image_file)s) AS embedded_with,
       pp.lab AS palette_lab, pp.shares AS palette_shares
FROM painting p LEFT JOIN painting_palette pp ON pp.painting_id = p.painting_id
WHERE p.image_file = %(image_file)s
"""

MODELS_SQL = """
SELECT m.name, m.dimension, m.provider, m.is_active AS active,
       coalesce(c.vectors, 0) AS vectors
FROM embedding_model m
LEFT JOIN (SELECT e.model, count(*) AS vectors FROM painting_embedding e
           GROUP BY e.model) AS c ON c.model = m.name
ORDER BY m.created_at, m.name
"""


class Gallery:
    """A painting collection in PostgreSQL: search it, load it, tune it.

    ``Gallery()`` opens the embedded database under $PGALLERY_HOME (started if needed),
    or DATABASE_URL when it is set; ``Gallery(url)`` opens that database. The connection
    opens on first use; a search checks once that the schema is migrated.
    """

    def __init__(self, url: str | None = None, *, settings: Settings | None = None,
                 check_schema: bool = True):
        settings = settings or Settings.load()
        if url is not None:
            settings = replace(settings, database_url=url)
        self.settings = settings
        self.url = resolve_url(settings)
        self.state = SearchState(settings, model_ttl=0.0)   # always the current model
        self._conn: psycopg.Connection | None = None
        self._check_schema = check_schema

    # --- the connection ---------------------------------------------------------------------

    @property
    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            if self._check_schema:
                from pgallery.migrations import require_current

                require_current(self.url)
                self._check_schema = False
            self._conn = connect(self.url)
        return self._conn

    def close(self) -> None:
        self.state.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def migrate(self, revision: str = "head") -> str | None:
        """Bring the schema to ``revision`` (the SQL functions included): the revision."""
        from pgallery import migrations

        migrations.upgrade(self.url, revision)
        self._check_schema = False
        return migrations.current_revision(self.url)

    # --- searching --------------------------------------------------------------------------

    def search(self, text: str | None = None, **params) -> Results:
        """Search by ``text``, ``similar`` (a painting's image_file), ``image`` (a path,
        bytes or an http(s) URL), ``vector`` or ``query`` (a composed query: '2:"stormy
        sea" + @a.jpg - "people"'), ``colour`` (['#1e3a8a', '#d4af37:0.3'] or
        '1e3a8a,d4af37': search_by_colour), or by none of them to list the collection
        under the filters. The other parameters are the web API's: k, page, author, technique,
        school, type, timeframe, year_from, year_to, min_similarity, order, model, exact,
        ef_search, probes (and hybrid=True for search_hybrid)."""
        if text is not None:
            params["text"] = text
        return Results(self.run(search_params(**params)))

    def run(self, params: SearchParams) -> SearchOutcome:
        """One search described by SearchParams (what the CLI builds): its outcome."""
        return flow.run(flow.search(params, self.state), self.connection)

    def model(self, name: str | None = None) -> flow.ModelInfo | None:
        """The named model, or the active one (None when there is none)."""
        return flow.run(flow.model(self.state, name), self.connection)

    def painting(self, image_file: str) -> dict:
        """One painting's metadata, parsed years, the models it is embedded with and its
        palette ([{"hex", "share"}], largest first; [] before it is computed)."""
        rows = flow.run(_fetch(PAINTING_SQL, {"image_file": image_file}), self.connection)
        if not rows:
            raise PaintingNotFound(f"no painting with image_file {image_file!r}")
        row = rows[0]
        row["palette"] = chips(row.pop("palette_lab"), row.pop("palette_shares"))
        return row

    def painting_title(self, image_file: str) -> str | None:
        row = flow.run(_fetch("SELECT title FROM painting WHERE image_file = %s",
                              (image_file,), one=True), self.connection)
        return row[0] if row and row[0] else None

    def image_locations(self, image_files: Sequence[str]) -> dict[str, str]:
        """image_file -> where the image is (image_uri as loaded), for thumbnails."""
        if not image_files:
            return {}
        rows = flow.run(_fetch("SELECT image_file, image_uri FROM painting"
                               " WHERE image_file = ANY(%s)", (list(image_files),)),
                        self.connection)
        return {r["image_file"]: r["image_uri"] for r in rows if r["image_uri"]}

    def duplicates(self, min_similarity: float | None = None, *, model: str | None = None,
                   **filters) -> list:
        """Near-duplicate groups (SQL near_duplicates()): Duplicate rows, groups in order,
        each group's most central member first. Filters by their API names."""
        from pgallery.search import near_duplicates

        if min_similarity is not None:
            vocabulary.MIN_SIMILARITY.check(min_similarity)
        rows = near_duplicates(self.connection, min_similarity=min_similarity,
                               filters=vocabulary.filters_from_api(
                                   {k: v for k, v in filters.items() if v is not None}),
                               model=model)
        return [Duplicate(**row) for row in rows]

    # --- models -----------------------------------------------------------------------------

    def models(self) -> list[dict]:
        """Every model: name, dimension, provider, active, vectors."""
        return flow.run(_fetch(MODELS_SQL), self.connection)

    def use_model(self, name: str) -> None:
        """Make ``name`` the active model (one atomic switch: SQL use_model())."""
        flow.run(_fetch("SELECT use_model(%s)", (name,), one=True), self.connection)
        self.state.forget_models()

    # --- loading ----------------------------------------------------------------------------

    def load_semart(self, csv: str | Path, images: str | Path | None = None, *,
                    provider: str | None = None, progress=None, batch_size: int | None = None):
        """Load a SemArt CSV and its images (default: the Images/ directory next to the
        CSV), embedding new or changed images with ``provider``: an ImageLoadSummary.
        ``progress`` is called as progress(done, total), or is a loading Progress."""
        from pgallery.loading.semart import read_semart_csv

        csv = Path(csv)
        if images is None:
            images = next((csv.parent / name for name in ("Images", "images")
                           if (csv.parent / name).is_dir()), None)
            if images is None:
                raise ArgError(f"say where the images of {csv} are (an Images/ directory "
                               "next to it, or --images DIR)")
        images = Path(images)
        if not images.is_dir():
            raise ArgError(f"{images}: no such directory")
        listing = read_semart_csv(csv, images)
        return self._load_images(lambda conn, p: listing, provider, progress, batch_size)

    def load_folder(self, folder: str | Path, *, provider: str | None = None, progress=None,
                    batch_size: int | None = None):
        """Load a folder of images (recursive): an ImageLoadSummary."""
        from pgallery.loading.folder import read_folder

        listing = read_folder(Path(folder))
        return self._load_images(lambda conn, p: listing, provider, progress, batch_size)

    def retry_failed(self, *, provider: str | None = None, progress=None,
                     batch_size: int | None = None):
        """Embed again the images that failed before, for ``provider``'s model."""
        from pgallery.loading.pipeline import failed_images

        return self._load_images(lambda conn, p: failed_images(conn, p.model), provider,
                                 progress, batch_size)

    def load_embeddings(self, path: str | Path, *, model: str, progress=None,
                        batch_size: int | None = None):
        """Load a file of precomputed embeddings (tab-separated or Parquet): a LoadSummary."""
        from pgallery.loading.embeddings_file import load_embeddings_file

        conn = self.connection          # the schema is checked before the bar shows
        with _progress(progress) as shown:
            summary = load_embeddings_file(conn, Path(path), model=model,
                                           batch_size=batch_size or EMBEDDINGS_BATCH,
                                           progress=shown)
        self.state.forget_models()
        return summary

    def _load_images(self, listing_of, provider_name, progress, batch_size):
        from pgallery.loading.pipeline import DEFAULT_BATCH_SIZE, load_images
        from pgallery.providers import get_provider

        with get_provider(provider_name, self.settings) as provider:
            listing = listing_of(self.connection, provider)
            with _progress(progress) as shown:
                summary = load_images(self.connection, provider, listing, progress=shown,
                                      batch_size=batch_size or DEFAULT_BATCH_SIZE)
        self.state.forget_models()
        return summary

    def backfill_palettes(self, images: str | Path | None = None, *, progress=None,
                          batch_size: int | None = None):
        """Compute the palette of every painting that has none (loading/palettes.py):
        resumable, a commit per batch. ``images``: where to find moved images by
        image_file. A BackfillSummary (done, failed, remaining)."""
        from pgallery.loading.palettes import DEFAULT_BATCH, backfill_palettes

        conn = self.connection
        with _progress(progress) as shown:
            return backfill_palettes(conn, images_dir=Path(images) if images else None,
                                     batch_size=batch_size or DEFAULT_BATCH, progress=shown)

    # --- the map ----------------------------------------------------------------------------

    def map_points(self, bbox: str | Sequence[float] | None = None, limit: int | None = None,
                   *, model: str | None = None, **filters) -> list[dict]:
        """At most ``limit`` paintings inside ``bbox`` (x0, y0, x1, y1 of the unit-square
        map; "x0,y0,x1,y1" too; default the whole map), an even sample when there are
        more (SQL map_points): dicts of painting_id, image_file, title, x, y, sample_rank.
        Filters by their API names, as search() takes them."""
        from pgallery.map import viewport

        box = (viewport.parse_bbox(bbox) if bbox is None or isinstance(bbox, str)
               else viewport.check(viewport.Viewport(*map(float, bbox))))
        args = viewport.arguments(box, viewport.parse_limit(limit),
                                  vocabulary.filters_from_api(
                                      {k: v for k, v in filters.items() if v is not None}),
                                  model)
        return flow.run(_fetch(viewport.STATEMENT, args), self.connection)

    def map_layout(self, *, model: str | None = None, method: str = "neighbours",
                   progress=None):
        """Lay out every painting of ``model`` (default the active one) afresh and store
        the map (pgallery.map.store): a LayoutSummary. ``progress(stage, done, total)``."""
        from pgallery.map import store

        return store.full_layout(self.connection, model, method=method, progress=progress)

    def place_on_map(self, model: str | None = None) -> int:
        """Place the paintings that have no position yet beside their nearest neighbours
        on the map, moving no other (SQL place_on_map): how many were placed."""
        from pgallery.map import store

        return store.place_new(self.connection, model)

    def map_status(self, model: str | None = None):
        """How many of the model's paintings the map holds, and how they got there."""
        from pgallery.map import store

        return store.status(self.connection, model)

    # --- the indexes ------------------------------------------------------------------------

    def tune(self, *, record: bool = True, **options):
        """Measure recall and set the search default that meets the target (tuning.py's
        tune_recall, its keyword arguments); recorded unless ``record`` is False."""
        from pgallery import tuning

        with connect(self.url, autocommit=True) as conn:
            result = tuning.tune_recall(conn, **options)
            if record and result.sample_size:
                tuning.record(conn, result)
        return result

    def index_status(self) -> list[dict]:
        """The last recall measurement of each model and index (index_tuning_status())."""
        return flow.run(_fetch("SELECT * FROM index_tuning_status()"
                               " ORDER BY model, index_method"), self.connection)


def _fetch(statement: str, args=None, one: bool = False):
    return (yield flow.Fetch(statement, args, one=one))


@contextmanager
def _progress(progress):
    """A loading Progress for ``progress``: None, a callback(done, total), or a Progress
    (entered around the load when it is a context manager, as the CLI's bar is)."""
    if progress is None or not hasattr(progress, "advance"):
        yield _Progress(progress) if progress is not None else None
    elif hasattr(progress, "__enter__"):
        with progress as entered:
            yield entered
    else:
        yield progress


__all__ = ["Gallery", "Result", "Results", "Duplicate", "search_params"]
