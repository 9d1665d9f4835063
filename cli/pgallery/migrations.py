"""Run Alembic from code, and the one step every migration takes (docs/migrations.md).

The migrations in ``alembic/versions/`` are a few lines each: ``step(op, "NNNN")``. This
module runs the revision's run-once SQL of ``sql/incremental/``, installs the replaceable
layer (``sql/idempotent/``, or the frozen ``sql/releases/`` of an older revision), pins the
``search_path`` the functions are created under, and checks the server's pgvector.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import psycopg
from psycopg import sql

from pgallery.errors import DatabaseError, SchemaNotReady


def _sql_dir() -> Path:
    """Where sql/ is: pyproject.toml maps the repository's sql/ and alembic/ into the
    package, so a wheel holds them as pgallery/sql/ and pgallery/alembic/ and an editable
    install resolves pgallery.sql to the checkout's sql/. Either way alembic/ is beside it."""
    try:
        return Path(files("pgallery.sql"))
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "pgallery.sql is not installed: in a checkout, install pgallery with "
            "`pip install -e .` (cli/ on PYTHONPATH alone does not find sql/)",
            name="pgallery.sql") from None


SQL_DIR = _sql_dir()
ALEMBIC_DIR = SQL_DIR.parent / "alembic"
MIN_PGVECTOR = (0, 8, 4)  # iterative index scans (0.8.0) and their fixes


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def check_pgvector(conn: psycopg.Connection) -> str:
    """Fail with a clear message unless pgvector >= 0.8.4 can be installed or is installed."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions"
        " WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise DatabaseError(
            "pgvector is not available on this server: install it (the pgvector/pgvector "
            "Docker image has it), or unset DATABASE_URL to use the embedded PostgreSQL"
        )
    available, installed = row
    version = installed or available
    if _version_tuple(version) < MIN_PGVECTOR:
        wanted = ".".join(map(str, MIN_PGVECTOR))
        raise DatabaseError(
            f"pgallery needs pgvector >= {wanted}, this server has {version} "
            f"(try ALTER EXTENSION vector UPDATE, or upgrade the server's pgvector)"
        )
    return version


def pin_search_path(conn: psycopg.Connection) -> None:
    """Make the functions created next resolve names only in pgallery's and pgvector's
    schemas (they use ``SET search_path FROM CURRENT``), never in a caller's schema."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    if schema is None:
        raise DatabaseError("no schema to create pgallery's objects in (check search_path)")
    row = conn.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()
    schemas = [schema] + ([row[0].strip('"')] if row and row[0].strip('"') != schema else [])
    # pg_catalog is searched first implicitly; pg_temp goes last so a temporary object
    # can never shadow ours. Objects are created in the first schema: ours.
    path = sql.SQL(", ").join([*map(sql.Identifier, schemas), sql.Identifier("pg_temp")])
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(path))


def apply_sql_file(conn: psycopg.Connection, relative_path: str) -> None:
    """Execute one file of ``sql/`` (many statements; no parameters, so sent as written)."""
    conn.execute((SQL_DIR / relative_path).read_text(encoding="utf-8"))


# -- The layout (docs/migrations.md) ------------------------------------------------------
#
#   sql/incremental/NNNN_*.sql       run once, on the upgrade to NNNN (tables, columns, data)
#   sql/incremental/NNNN_*.down.sql  run once, on the downgrade from NNNN
#   sql/idempotent/*.sql             every function and procedure, and the layer's types, as
#                                    head defines them, ending with the privileges step
#   sql/releases/NNNN.sql            the same layer as revision NNNN shipped it, frozen by
#                                    `python -m pgallery.migrations freeze` when a later
#                                    revision changed it
#
# Every step, up or down, ends by installing the layer of the revision it arrives at: the
# routines and types of the layer it leaves are dropped and the new layer is created whole,
# so what a revision holds never depends on the path that reached it.

INCREMENTAL_DIR = SQL_DIR / "incremental"
IDEMPOTENT_DIR = SQL_DIR / "idempotent"
RELEASES_DIR = SQL_DIR / "releases"

# CREATE [OR REPLACE] FUNCTION|PROCEDURE name / CREATE TYPE name, at the start of a line
_CREATED = re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TYPE)\s+"
                      r"([a-z_][a-z0-9_]*)\s*[( ]", re.IGNORECASE | re.MULTILINE)
# CREATE [OR REPLACE] TRIGGER name ... ON table (a layer's triggers call its functions)
_TRIGGER = re.compile(r"^CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+([a-z_][a-z0-9_]*)\s+"
                      r"[^;]*?\bON\s+([a-z_][a-z0-9_]*)", re.IGNORECASE | re.MULTILINE)
_INCLUDE = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
# one parameter of the shared list: "    name type DEFAULT value," (a comment may follow)
_PARAMETER = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s+([a-z][a-z0-9_ ]*?)\s+DEFAULT\s+",
                        re.IGNORECASE)


def _placeholder_fills() -> dict[str, str]:
    """The layer's three placeholders, all made from sql/idempotent/_search_parameters.sql,
    the one place the parameters every search_* function takes after its query are written:
    {{search_parameters}} the parameter list with defaults, for a search function's
    signature; {{search_request_fields}} the same as the fields of type search_request;
    {{search_request}} the call's arguments gathered into one search_request value."""
    lines = [line for line in (IDEMPOTENT_DIR / "_search_parameters.sql").read_text()
             .splitlines() if line.strip() and not line.lstrip().startswith("--")]
    params = []
    for line in lines:
        match = _PARAMETER.match(line)
        if not match:
            raise DatabaseError(f"_search_parameters.sql: cannot read {line.strip()!r}")
        params.append((match.group(1), match.group(2)))
    return {
        "search_parameters": "\n".join(lines).rstrip(",").strip(),
        "search_request_fields": ",\n    ".join(f"{n} {t}" for n, t in params),
        "search_request": "ROW(" + ", ".join(n for n, _ in params) + ")::search_request",
    }


def _expand(text: str, fills: dict[str, str]) -> str:
    def fill(match: re.Match) -> str:
        if match.group(1) not in fills:
            raise DatabaseError(f"unknown placeholder {match.group(0)} in sql/idempotent")
        return fills[match.group(1)]

    return _INCLUDE.sub(fill, text)


def head_layer() -> str:
    """The layer as sql/idempotent/ defines it now, placeholders filled, in file order
    (files starting with '_' are fragments for the placeholders, not applied)."""
    fills = _placeholder_fills()
    parts = []
    for path in sorted(IDEMPOTENT_DIR.glob("[!_]*.sql")):
        parts.append(f"-- ==== {path.name}\n\n{_expand(path.read_text(encoding='utf-8'), fills)}")
    return "\n".join(parts)


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def layer(revision: str | None) -> str:
    """The layer a database at `revision` holds: its frozen release, or the release of the
    first later revision that froze one (the layer did not change in between), or head's."""
    if revision is None:
        return ""
    order = revisions()
    for later in order[order.index(revision):]:
        frozen = RELEASES_DIR / f"{later}.sql"
        if frozen.is_file():
            return frozen.read_text(encoding="utf-8")
    return head_layer()


def layer_digest(revision: str) -> str:
    """sha256 of the layer a revision holds; each migration records its own as layer_sha256."""
    import hashlib

    text = layer(revision)
    body = text[text.find("-- ===="):]     # a frozen release's header is not the layer
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def recorded_digest(revision: str) -> str | None:
    from alembic.script import ScriptDirectory

    module = ScriptDirectory.from_config(alembic_config()).get_revision(revision).module
    return getattr(module, "layer_sha256", None)


def layer_objects(text: str) -> tuple[set[str], set[str]]:
    """(routine names, type names) that a layer's text creates."""
    routines, types = set(), set()
    for kind, name in _CREATED.findall(text):
        (types if kind.upper() == "TYPE" else routines).add(name.lower())
    return routines, types


def drop_layer(conn: psycopg.Connection, *texts: str) -> None:
    """Drop every trigger, routine and type the given layers create, whatever their
    arguments are now (each signature is read from the catalog), in one statement each so that routines
    that depend on one another go together."""
    routines, types = set(), set()
    for text in texts:
        r, t = layer_objects(text)
        routines |= r
        types |= t
        for trigger, table in _TRIGGER.findall(text):
            # a trigger calls a routine of the layer: it goes first, and comes back with it
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]:
                conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                    sql.Identifier(trigger.lower()), sql.Identifier(table.lower())))
    signatures = [row[0] for row in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p"
        " WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY(%s)"
        "   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d"
        "                   WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid"
        "                     AND d.deptype = 'e')", (sorted(routines),))]
    if signatures:
        # regprocedure's text is a quoted, schema-resolved signature from the catalog
        conn.execute(sql.SQL("DROP ROUTINE {}").format(
            sql.SQL(", ").join(sql.SQL(s) for s in signatures)))
    existing = [row[0] for row in conn.execute(
        "SELECT t.typname FROM pg_catalog.pg_type t"
        " WHERE t.typnamespace = current_schema()::regnamespace AND t.typname = ANY(%s)",
        (sorted(types),))]
    if existing:
        conn.execute(sql.SQL("DROP TYPE {}").format(
            sql.SQL(", ").join(map(sql.Identifier, existing))))


def step(op, revision: str, *, down: bool = False) -> None:
    """One migration step from Alembic: upgrade() calls step(op, "NNNN"); downgrade()
    calls step(op, "NNNN", down=True).

    Up: drop the layer of the revision below, run sql/incremental/NNNN_*.sql, install
    NNNN's layer. Down: drop NNNN's layer, run NNNN_*.down.sql, install the layer of the
    revision below (none below the first)."""
    conn = op.get_bind().connection.driver_connection
    order = revisions()
    below = order[order.index(revision) - 1] if order.index(revision) > 0 else None
    leaving, arriving = (layer(revision), layer(below)) if down else (layer(below),
                                                                      layer(revision))
    pin_search_path(conn)
    drop_layer(conn, leaving, arriving)
    for path in sorted(INCREMENTAL_DIR.glob(f"{revision}_*.sql")):
        if path.name.endswith(".down.sql") == down:
            conn.execute(path.read_text(encoding="utf-8"))
    if arriving:
        install_layer(conn, arriving)


def install_layer(conn: psycopg.Connection, text: str) -> None:
    """Create a layer's objects; its privileges step (the last file) reads the names of the
    routines it may grant from pgallery.layer_routines, set here for this transaction."""
    routines, _ = layer_objects(text)
    conn.execute("SELECT set_config('pgallery.layer_routines', %s, true)",
                 (",".join(sorted(routines)),))
    conn.execute(text)


def freeze(revision: str) -> Path:
    """Write sql/releases/<revision>.sql: the head layer as it is now, before a new
    revision changes it. `python -m pgallery.migrations freeze` does it for the head."""
    target = RELEASES_DIR / f"{revision}.sql"
    if target.exists():
        raise DatabaseError(f"{target} exists: a release is frozen once")
    target.write_text(
        f"-- The replaceable layer exactly as revision {revision} shipped it: sql/idempotent/"
        f" at {revision},\n-- placeholders filled. Frozen by `python -m pgallery.migrations"
        f" freeze`; never edit it.\n\n" + head_layer(), encoding="utf-8")
    return target


def alembic_config(url: str | None = None, cmd_opts=None):
    """The Alembic configuration of pgallery's migrations, wherever pgallery is installed
    (the repository's alembic.ini says the same for `alembic` run from its root).
    `pgallery alembic ...` passes Alembic's parsed command line as `cmd_opts`."""
    from alembic.config import Config

    cfg = Config(cmd_opts=cmd_opts)
    # ConfigParser interpolates %: a path may hold one
    cfg.set_main_option("script_location", str(ALEMBIC_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.attributes["database_url"] = url
    return cfg


def _known_revision(url: str) -> None:
    """Refuse a database whose revision these migrations cannot move, with advice instead
    of Alembic's 'Can't locate revision': one folded into the baseline (0001-0011), or one
    from a newer pgallery. alembic/env.py calls it, so `pgallery migrate`, `pgallery
    alembic ...` and `alembic` run from the repository root all make the same check."""
    current = current_revision(url)
    known = revisions()
    if current is not None and current not in known:
        if current < known[0]:
            raise SchemaNotReady(
                f"the database is at revision {current}, from before pgallery's migrations "
                f"were folded into the {known[0]} baseline: upgrade it to {known[0]} with the "
                f"pgallery release it was made with (its `pgallery migrate`), then run this one")
        raise SchemaNotReady(
            f"the database is at revision {current}, which this pgallery does not know (its "
            f"newest is {known[-1]}): it was migrated by a newer pgallery; use that one")


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade to `revision` (SchemaNotReady for a revision _known_revision refuses)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade to `revision` ('base': nothing of pgallery's is left)."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The database's revision, None when it was never migrated (or is back at base)."""
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return row[0] if row else None


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def require_current(url: str) -> None:
    """Raise SchemaNotReady unless the database is migrated to head."""
    current = current_revision(url)
    if current != head_revision():
        state = "not migrated" if current is None else f"at revision {current}"
        raise SchemaNotReady(
            f"the database is {state}; run `pgallery migrate` (or `alembic upgrade head`)"
        )


def _main(argv: list[str]) -> int:
    """python -m pgallery.migrations freeze: before changing sql/idempotent/ for a new
    revision, keep the head revision's layer as it shipped."""
    if argv[:1] != ["freeze"] or len(argv) > 2:
        print("usage: python -m pgallery.migrations freeze [REVISION]   (default: head)")
        return 2
    print(freeze(argv[1] if len(argv) == 2 else head_revision()))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
