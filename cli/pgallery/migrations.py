"""Run Alembic from code, and the one step every migration takes (docs/migrations.md).

The migrations in ``alembic/versions/`` are a few lines each: ``step(op, "NNNN")``. This
module runs the revision's run-once SQL of ``sql/incremental/``, turns the replaceable layer
it leaves into the one it arrives at (``sql/idempotent/``, or the frozen ``sql/releases/``
of an older revision) in place where it can, so that what users built on it stays, pins the
``search_path`` the functions are created under, and checks the server's pgvector.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import psycopg
from psycopg import sql

from pgallery.errors import DatabaseError, MigrationBlocked, SchemaNotReady


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
# Every step, up or down, ends holding exactly the layer of the revision it arrives at, but
# it replaces in place what it can: a routine whose signature the arriving layer keeps is
# replaced with CREATE OR REPLACE (its grants, comment and the user's views on it stay),
# and only what was removed or changed is dropped (replace_layer). A step that would drop
# something a user's object depends on stops with MigrationBlocked and rolls back.

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
    return _digest(layer(revision))


def _digest(text: str) -> str:
    import hashlib

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


def _drop_triggers(conn: psycopg.Connection, *texts: str) -> None:
    """A layer's triggers call its functions: they go first, and come back with the
    arriving layer (nothing of a user's can hang on a trigger)."""
    for text in texts:
        for trigger, table in _TRIGGER.findall(text):
            # only a trigger that is there: Citus refuses even DROP TRIGGER IF EXISTS on
            # a distributed table (which has none of the layer's, 78_compact_vectors.sql)
            if conn.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger"
                            " WHERE tgrelid = to_regclass(%s) AND tgname = %s)",
                            (table, trigger.lower())).fetchone()[0]:
                conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                    sql.Identifier(trigger.lower()), sql.Identifier(table.lower())))


def drop_layer(conn: psycopg.Connection, *texts: str) -> None:
    """Drop every trigger, routine and type the given layers create, whatever their
    arguments are now (each signature is read from the catalog), in one statement each so
    that routines that depend on one another go together. Migrations use replace_layer,
    which keeps what it can; this is the blunt tool for a scratch database."""
    routines, types = set(), set()
    for text in texts:
        r, t = layer_objects(text)
        routines |= r
        types |= t
    _drop_triggers(conn, *texts)
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    signatures = [r.signature for r in _routines(conn, schema, routines)]
    if signatures:
        conn.execute(sql.SQL("DROP ROUTINE {}").format(
            sql.SQL(", ").join(sql.SQL(s) for s in signatures)))
    existing = [t.name for t in _types(conn, schema, types)]
    if existing:
        conn.execute(sql.SQL("DROP TYPE {}").format(
            sql.SQL(", ").join(map(sql.Identifier, existing))))


# -- Replacing one layer by another, keeping what users built on it -----------------------

@dataclass(frozen=True)
class _Routine:
    """A routine as the catalog has it: what decides whether CREATE OR REPLACE may turn
    one definition into another (PostgreSQL refuses a change of kind, result, parameter
    names or modes, and fewer defaults; the identity arguments name the routine)."""

    oid: int
    name: str
    kind: str
    identity: str
    result: str
    names: str
    modes: str
    defaults: int
    default_acl: bool     # proacl is NULL: PostgreSQL's default privileges
    signature: str        # oid::regprocedure, quoted and resolved by the catalog
    sql_body: bool        # a SQL-standard body (BEGIN ATOMIC, RETURN), which has dependencies

    def replaceable_by(self, new: "_Routine") -> bool:
        return (self.kind == new.kind and self.result == new.result
                and self.names == new.names and self.modes == new.modes
                and new.defaults >= self.defaults)

    def short(self) -> str:
        """search_by_image(text, integer, ...): the name and its first argument types."""
        inside = self.signature[self.signature.index("(") + 1:-1]
        arguments = inside.split(",") if inside else []
        shown = arguments[:2] + (["..."] if len(arguments) > 2 else [])
        return f"{self.name}({', '.join(shown)})"


@dataclass(frozen=True)
class _Type:
    oid: int
    name: str
    kind: str
    relation: int         # the composite's pg_class row (0 for other kinds)
    array: int
    fields: str

    def parts(self) -> set[tuple[str, int]]:
        """The type and what PostgreSQL made with it: its array type, a composite's row."""
        parts = {("pg_type", self.oid), ("pg_class", self.relation), ("pg_type", self.array)}
        return {(catalog, oid) for catalog, oid in parts if oid}


_NOT_AN_EXTENSION_MEMBER = """NOT EXISTS (
    SELECT FROM pg_catalog.pg_depend e WHERE e.classid = '{catalog}'::regclass
      AND e.objid = {oid} AND e.deptype = 'e')"""


def _routines(conn, schema: str, names) -> list[_Routine]:
    rows = conn.execute(
        "SELECT p.oid, p.proname, p.prokind::text,"
        "       pg_catalog.pg_get_function_identity_arguments(p.oid),"
        "       coalesce(pg_catalog.pg_get_function_result(p.oid), ''),"
        "       coalesce(p.proargnames::text, ''), coalesce(p.proargmodes::text, ''),"
        "       p.pronargdefaults, p.proacl IS NULL, p.oid::regprocedure::text,"
        "       p.prosqlbody IS NOT NULL"
        " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s AND p.proname = ANY(%s) AND "
        + _NOT_AN_EXTENSION_MEMBER.format(catalog="pg_proc", oid="p.oid"),
        (schema, sorted(names))).fetchall()
    return [_Routine(*row) for row in rows]


def _types(conn, schema: str, names) -> list[_Type]:
    rows = conn.execute(
        "SELECT t.oid, t.typname, t.typtype::text, t.typrelid, t.typarray,"
        "       coalesce((SELECT string_agg(quote_ident(a.attname) || ' '"
        "                    || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)"
        "                 FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid"
        "                   AND a.attnum > 0 AND NOT a.attisdropped), '')"
        " FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
        " WHERE n.nspname = %s AND t.typname = ANY(%s) AND "
        + _NOT_AN_EXTENSION_MEMBER.format(catalog="pg_type", oid="t.oid"),
        (schema, sorted(names))).fetchall()
    return [_Type(*row) for row in rows]


def _stub(conn, routine: _Routine) -> None:
    """Give a routine with a SQL-standard body a body that depends on nothing, keeping its
    oid, signature, grants and dependants: the run-once SQL may then drop or change a
    table the old body read."""
    arguments, qualified = conn.execute(
        "SELECT pg_catalog.pg_get_function_arguments(p.oid),"
        "       quote_ident(n.nspname) || '.' || quote_ident(p.proname)"
        " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        " WHERE p.oid = %s", (routine.oid,)).fetchone()
    # the signature's text comes from the catalog, which prints it as valid SQL
    head = sql.SQL("CREATE OR REPLACE {} {}({})").format(
        sql.SQL("PROCEDURE" if routine.kind == "p" else "FUNCTION"), sql.SQL(qualified),
        sql.SQL(arguments))
    if routine.kind == "p":
        conn.execute(head + sql.SQL(" LANGUAGE plpgsql AS $stub$BEGIN END$stub$"))
    else:
        conn.execute(head + sql.SQL(
            " RETURNS {} LANGUAGE plpgsql AS $stub$BEGIN RAISE EXCEPTION"
            " 'being replaced by a migration'; END$stub$").format(sql.SQL(routine.result)))


def _rehearse(conn, arriving: str, routine_names, type_names):
    """Install the arriving layer into a scratch schema, read its routines and types the
    way the catalog describes the installed ones, and undo it all (a savepoint): the
    layer's own signatures, from PostgreSQL rather than from parsing its text."""
    scratch = f"pgallery_arriving_{uuid.uuid4().hex[:8]}"
    path = conn.execute("SHOW search_path").fetchone()[0]
    conn.execute("SAVEPOINT pgallery_rehearsal")
    try:
        # on a Citus node the rehearsal stays on it: Citus would send the scratch schema's
        # objects to the workers, and fail there on names only this session resolves
        conn.execute("SELECT set_config('citus.enable_ddl_propagation', 'off', true)"
                     " FROM pg_extension WHERE extname = 'citus'")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
        # the scratch schema first: the layer's names resolve to its own new objects, and
        # the catalog prints their types unqualified, as it prints the installed ones
        conn.execute(sql.SQL("SET LOCAL search_path TO {}, {}").format(
            sql.Identifier(scratch), sql.SQL(path)))
        install_layer(conn, arriving)
        routines = {(r.name, r.identity): r for r in _routines(conn, scratch, routine_names)}
        types = {t.name: t for t in _types(conn, scratch, type_names)}
    finally:
        conn.execute("ROLLBACK TO SAVEPOINT pgallery_rehearsal")
        conn.execute("RELEASE SAVEPOINT pgallery_rehearsal")
    return routines, types


def _dependants(conn, objects: set[tuple[str, int]]) -> list[tuple]:
    """pg_depend's rows of the objects that depend on `objects` ((catalog, oid) pairs)."""
    catalogs = [c for c, _ in objects]
    oids = [o for _, o in objects]
    return conn.execute(
        "SELECT d.classid::regclass::text, d.objid, d.objsubid, d.deptype::text,"
        "       d.refclassid::regclass::text, d.refobjid"
        " FROM pg_catalog.pg_depend d"
        " JOIN unnest(%s::text[], %s::oid[]) AS o(catalog, oid)"
        "   ON d.refclassid = o.catalog::regclass AND d.refobjid = o.oid"
        " WHERE d.deptype NOT IN ('e', 'x')", (catalogs, oids)).fetchall()


def _describe(conn, catalog: str, oid: int, subid: int) -> str:
    """'view public.my_top', 'function public.f(integer)', 'default value for public.t.a':
    a view (or materialized view) is named, not the rule that holds its query."""
    if catalog == "pg_rewrite":
        relation, rule = conn.execute("SELECT ev_class, rulename FROM pg_catalog.pg_rewrite"
                                      " WHERE oid = %s", (oid,)).fetchone()
        if rule == "_RETURN":
            catalog, oid, subid = "pg_class", relation, 0
    kind, identity = conn.execute(
        "SELECT type, identity FROM pg_catalog.pg_identify_object(%s::regclass, %s, %s)",
        (catalog, oid, subid)).fetchone()
    return f"{kind} {identity}"


def _managed_roles(conn) -> list[str]:
    """The roles whose privileges on the layer's routines each layer sets itself."""
    return [row[0] for row in conn.execute(
        "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname LIKE 'pgallery\\_%'"
        " ORDER BY 1")]


def _foreign_grants(conn, routines: list[_Routine], managed: list[str]) -> list[tuple]:
    """(routine name, role, grantable) for EXECUTE granted to roles of the user's own."""
    if not routines:
        return []
    return conn.execute(
        "SELECT p.proname, g.rolname, a.is_grantable"
        " FROM pg_catalog.pg_proc p, aclexplode(p.proacl) a, pg_catalog.pg_roles g"
        " WHERE p.oid = ANY(%s) AND a.privilege_type = 'EXECUTE' AND g.oid = a.grantee"
        "   AND a.grantee <> p.proowner AND NOT g.rolname = ANY(%s)"
        " ORDER BY 1, 2", ([r.oid for r in routines], managed)).fetchall()


def replace_layer(conn: psycopg.Connection, leaving: str, arriving: str, *,
                  between=None, moving: tuple[str, str] = ("upgrade", "head")) -> None:
    """Turn the installed layer `leaving` into `arriving`, keeping what users built on it.

    `between` runs after the old layer is out of the way and before the new one goes in
    (a revision's run-once SQL). `moving` is ("upgrade" or "downgrade", target revision),
    for the message. Afterwards the schema holds exactly `arriving`; in between:

    - a routine whose signature `arriving` keeps (same kind, identity arguments, result,
      parameter names; no default removed) is replaced with CREATE OR REPLACE, so its
      oid, grants, comment and the user's objects that call it stay; a composite type
      with the same fields is kept; everything else of `leaving` is dropped, together
      with what of pgallery's depends on it;
    - if a user's object (a view, a function, a default, ...) depends on something that is
      dropped, MigrationBlocked names it before anything is dropped (the caller's
      transaction then rolls back whatever ran before);
    - a user's EXECUTE grant on a routine that is dropped goes to the routines of the same
      name that replace it; pgallery's own roles get what the arriving layer grants.
    """
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    leaving_routines, leaving_types = layer_objects(leaving)
    arriving_routines, arriving_types = layer_objects(arriving)
    routine_names = leaving_routines | arriving_routines
    type_names = leaving_types | arriving_types
    managed = _managed_roles(conn)

    # first what the arriving layer does not name at all: it goes whatever its signature,
    # before the run-once SQL, which may drop a table such a routine returns
    old_routines = _routines(conn, schema, routine_names)
    old_types = _types(conn, schema, type_names)
    _drop_triggers(conn, leaving, arriving)
    _drop(conn, old_routines, old_types, moving, managed,
          keep={r.oid for r in old_routines if r.name in arriving_routines},
          keep_types={t.oid for t in old_types if t.name in arriving_types})

    old_routines = _routines(conn, schema, arriving_routines)
    old_types = _types(conn, schema, arriving_types)
    for routine in old_routines:
        if routine.sql_body:
            _stub(conn, routine)
    if between is not None:
        between()
    new_routines, new_types = {}, {}
    if old_routines or old_types:
        new_routines, new_types = _rehearse(conn, arriving, routine_names, type_names)

    kept = {r.oid for r in old_routines
            if (r.name, r.identity) in new_routines
            and r.replaceable_by(new_routines[r.name, r.identity])}
    for routine in old_routines:
        # the arriving layer leaves PUBLIC's default privileges (a NULL acl), which no
        # GRANT restores: with nothing of the user's on the routine, it is recreated
        if (routine.oid in kept and new_routines[routine.name, routine.identity].default_acl
                and not routine.default_acl
                and not _foreign_grants(conn, [routine], managed)
                and not _dependants(conn, {("pg_proc", routine.oid)})):
            kept.discard(routine.oid)
    kept_types = {t.oid for t in old_types
                  if t.name in new_types and t.kind == "c" == new_types[t.name].kind
                  and t.fields == new_types[t.name].fields}
    carried = _drop(conn, old_routines, old_types, moving, managed, kept, kept_types)
    kept_routines = [r for r in _routines(conn, schema, arriving_routines) if r.oid in kept]

    for routine in kept_routines:
        # pgallery's roles get exactly what the arriving layer grants; others keep theirs
        conn.execute(sql.SQL("REVOKE ALL ON ROUTINE {} FROM {}").format(
            sql.SQL(routine.signature),
            sql.SQL(", ").join([sql.SQL("PUBLIC"), *map(sql.Identifier, managed)])))
    text = arriving
    for t in _types(conn, schema, arriving_types):    # the kept ones
        text = _type_statement(t.name).sub("", text, count=1)
    if text:
        install_layer(conn, text)
    for routine in kept_routines:
        if new_routines[routine.name, routine.identity].default_acl:
            conn.execute(sql.SQL("GRANT EXECUTE ON ROUTINE {} TO PUBLIC").format(
                sql.SQL(routine.signature)))
    for name, role, grantable in carried:
        for routine in _routines(conn, schema, {name}):
            if routine.oid not in kept:
                conn.execute(sql.SQL("GRANT EXECUTE ON ROUTINE {} TO {}{}").format(
                    sql.SQL(routine.signature), sql.Identifier(role),
                    sql.SQL(" WITH GRANT OPTION" if grantable else "")))


def _drop(conn, routines: list[_Routine], types: list[_Type], moving: tuple[str, str],
          managed: list[str], keep: set[int], keep_types: set[int]) -> list[tuple]:
    """Drop the routines and types not kept, and what of the layer depends on them (found
    through pg_depend: a routine taking a dropped type goes with it); raise MigrationBlocked
    instead, dropping nothing, if anything else does (a user's view, function, default).
    Returns the user's EXECUTE grants on the dropped routines, to carry over."""
    routine_of = {r.oid: r for r in routines}
    type_of = {part: t for t in types for part in t.parts()}
    keep, keep_types = set(keep), set(keep_types)
    origin: dict[tuple[str, int], str] = {}
    frontier: set[tuple[str, int]] = set()

    def going(key: tuple[str, int], name: str) -> None:
        origin[key] = name
        frontier.add(key)

    def type_goes(t: _Type) -> None:
        keep_types.discard(t.oid)
        for part in t.parts():
            going(part, f"type {t.name}")

    for r in routines:
        if r.oid not in keep:
            going(("pg_proc", r.oid), r.short())
    for t in types:
        if t.oid not in keep_types:
            type_goes(t)
    blockers: dict[str, str] = {}
    while frontier:
        rows, frontier = _dependants(conn, frontier), set()
        for catalog, oid, subid, deptype, ref_catalog, ref_oid in rows:
            key = (catalog, oid)
            if key in origin:
                continue
            if catalog == "pg_proc" and oid in routine_of:
                keep.discard(oid)
                going(key, routine_of[oid].short())
            elif key in type_of:
                type_goes(type_of[key])
            elif deptype == "i":        # a part of what goes (an array type, a rule)
                going(key, origin[ref_catalog, ref_oid])
            else:
                blockers.setdefault(_describe(conn, catalog, oid, subid),
                                    origin[ref_catalog, ref_oid])
    if blockers:
        verb, target = moving
        them = "it" if len(blockers) == 1 else "them"
        raise MigrationBlocked(
            "; ".join(f"{what} depends on {on}" for what, on in sorted(blockers.items()))
            + f", which this {verb} to {target} changes: drop {them}, {verb}, and recreate "
              f"{them} (nothing was changed)")

    dropped = [r for r in routines if r.oid not in keep]
    carried = _foreign_grants(conn, dropped, managed)
    if dropped:
        conn.execute(sql.SQL("DROP ROUTINE {}").format(
            sql.SQL(", ").join(sql.SQL(r.signature) for r in dropped)))
    gone_types = [t.name for t in types if t.oid not in keep_types]
    if gone_types:
        conn.execute(sql.SQL("DROP TYPE {}").format(
            sql.SQL(", ").join(map(sql.Identifier, gone_types))))
    return carried


def _type_statement(name: str) -> re.Pattern:
    """A layer's CREATE TYPE name AS (...); statement (a composite's fields hold no ';')."""
    return re.compile(rf"^CREATE\s+TYPE\s+{re.escape(name)}\s+AS\s*\([^;]*\);[ \t]*\n?",
                      re.IGNORECASE | re.MULTILINE)


def step(op, revision: str, *, down: bool = False) -> None:
    """One migration step from Alembic: upgrade() calls step(op, "NNNN"); downgrade()
    calls step(op, "NNNN", down=True).

    Up: the layer of the revision below becomes NNNN's, with sql/incremental/NNNN_*.sql
    run in between. Down: NNNN's layer becomes the one below (none below the first), with
    NNNN_*.down.sql in between. replace_layer keeps what it can and stops, naming the
    object, where a user's object depends on what must go."""
    conn = op.get_bind().connection.driver_connection
    order = revisions()
    below = order[order.index(revision) - 1] if order.index(revision) > 0 else None
    leaving, arriving = (layer(revision), layer(below)) if down else (layer(below),
                                                                      layer(revision))
    moving = ("downgrade", below or "base") if down else ("upgrade", revision)

    def run_once() -> None:
        for path in sorted(INCREMENTAL_DIR.glob(f"{revision}_*.sql")):
            if path.name.endswith(".down.sql") == down:
                text = path.read_text(encoding="utf-8")
                # Citus sends some DDL on to the workers as the text it was given, which
                # for a file is every statement of it ("cannot insert multiple commands
                # into a prepared statement" on the worker): one statement at a time there
                for statement in (sql_statements(text) if propagating else [text]):
                    conn.execute(statement)

    pin_search_path(conn)
    propagating = _citus_propagation(conn, arriving, moving)
    try:
        replace_layer(conn, leaving, arriving, between=run_once, moving=moving)
    except psycopg.errors.DependentObjectsStillExist as exc:
        # the run-once SQL dropping a table a user's view reads, say: the server's own
        # words, on one line
        details = (exc.diag.message_detail or "").splitlines()
        them = "it" if len(details) == 1 else "them"
        raise MigrationBlocked(
            f"{exc.diag.message_primary} ({'; '.join(details)}): drop {them}, "
            f"{moving[0]}, and recreate {them} (nothing was changed)") from None


def _citus_propagation(conn: psycopg.Connection, arriving: str,
                       moving: tuple[str, str]) -> bool:
    """On a Citus coordinator whose tables are not laid out yet (pgallery.citus_layout),
    a step changes the coordinator alone, as a single server: Citus would otherwise send
    each new routine to the workers, and refuse those that read tables it does not manage
    yet. The layout step after the migrations sends what the workers need. Once the tables
    are laid out, Citus propagates each step's DDL as usual. True in that case."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus'),"
        "       to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL").fetchone()
    if not row[0]:
        return False
    if not _sharded(conn):
        conn.execute("SET LOCAL citus.enable_ddl_propagation = off")
        return False
    if "distributed_table(" not in arriving:
        raise _before_citus_support(*moving)
    return True


def _before_citus_support(verb: str, target: str) -> MigrationBlocked:
    return MigrationBlocked(
        f"revision {target} predates pgallery's Citus support (its functions cannot run on "
        f"sharded tables): a Citus cluster cannot {verb} to it (nothing was changed)")


def _sharded(conn: psycopg.Connection) -> bool:
    """Whether Citus has laid out painting_embedding (on a server with Citus installed)."""
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition"
        " WHERE logicalrelid = to_regclass('painting_embedding'))").fetchone()[0]


# what sql_statements steps over: a quoted string or identifier, a dollar-quoted body, a
# comment, or the semicolon that ends a statement
_SQL_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$[A-Za-z_0-9]*\$).*?\1|--[^\n]*"
                        r"|/\*.*?\*/|;", re.S)


def sql_statements(text: str) -> list[str]:
    """A file of SQL statements, one string each (without the semicolon; comments kept
    with the statement they precede), for a server that must be sent them one by one."""
    statements, start = [], 0
    for match in _SQL_TOKEN.finditer(text):
        if match.group(0) == ";":
            statements.append(text[start:match.start()])
            start = match.end()
    statements.append(text[start:])
    return [s for s in statements if _SQL_TOKEN.sub(
        lambda m: "" if m.group(0).startswith(("--", "/*")) else m.group(0), s).strip()]


def install_layer(conn: psycopg.Connection, text: str) -> None:
    """Create a layer's objects; its privileges step (the last file) reads the names of the
    routines it may grant from pgallery.layer_routines, set here for this transaction."""
    routines, _ = layer_objects(text)
    conn.execute("SELECT set_config('pgallery.layer_routines', %s, true)",
                 (",".join(sorted(routines)),))
    conn.execute(text)


def release_header(revision: str) -> str:
    """The lines `freeze` writes above the layer in sql/releases/<revision>.sql."""
    return (f"-- The replaceable layer exactly as revision {revision} shipped it: sql/idempotent/"
            f" at {revision},\n-- placeholders filled. Frozen by `python -m pgallery.migrations"
            f" freeze`; never edit it.\n\n")


def freeze(revision: str, directory: Path | None = None) -> Path:
    """Write sql/releases/<revision>.sql: the head layer as it is now, before a new
    revision changes it. `python -m pgallery.migrations freeze` does it for the head.

    It refuses unless sql/idempotent/ still gives the layer whose sha256 the revision
    records, so what is frozen is what that revision shipped, never an edited layer."""
    target = (directory or RELEASES_DIR) / f"{revision}.sql"
    if target.exists():
        raise DatabaseError(f"{target} exists: a release is frozen once")
    text = head_layer()
    recorded = recorded_digest(revision)
    if _digest(text) != recorded:
        raise DatabaseError(
            f"sql/idempotent/ is not the layer revision {revision} shipped (its layer_sha256 "
            f"is {recorded}, sql/idempotent/ gives {_digest(text)}): freeze before editing it "
            f"(git stash; python -m pgallery.migrations freeze; git stash pop)")
    target.write_text(release_header(revision) + text, encoding="utf-8")
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


def refuse_below_citus_support(url: str, target: str | None) -> None:
    """Before a downgrade of a sharded Citus database to ``target`` (a revision id or
    'base'): refuse it, changing nothing, if it goes below the first revision whose layer
    runs on sharded tables. (Each step checks too, but a downgrade crossing several
    revisions would otherwise stop half way.)"""
    known = revisions()
    if target not in (*known, "base"):
        return                       # head, a relative step: each step's own check applies
    supported = [r for r in known if "distributed_table(" in layer(r)]
    if not supported or (target != "base" and target >= supported[0]):
        return
    current = current_revision(url)
    if current is None or current < supported[0]:
        return                       # not above the Citus layer: nothing to protect
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL"
                            ).fetchone()[0] or not _sharded(conn):
            return
    raise _before_citus_support("downgrade", target)


def distribute_on_citus(url: str) -> list[str]:
    """After the revisions: on a Citus coordinator with workers, lay out the tables that
    are not laid out yet (pgallery.citus_layout); on any other server, nothing. Returns
    the tables distributed now."""
    from pgallery import citus_layout

    with psycopg.connect(url) as conn:
        if not citus_layout.is_coordinator(conn):
            return []
        pin_search_path(conn)
        try:
            return citus_layout.distribute(conn)
        except psycopg.Error as exc:
            raise DatabaseError(f"distributing the tables over the Citus workers failed: "
                                f"{exc.diag.message_primary or exc}") from None


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
    """The newest revision. Every command that opens the database checks it, so it is read
    from the revision files' own ``revision``/``down_revision`` lines rather than through
    Alembic, whose import (with SQLAlchemy's) took about 0.3 s of every command's start.
    A history that is not one line (branches, merges) is left to Alembic."""
    chain = _revision_chain()
    parents = set(chain.values())
    heads = [revision for revision in chain if revision not in parents]
    if len(heads) == 1 and all(p is None or isinstance(p, str) for p in parents):
        return heads[0]
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revision_chain() -> dict[str, object]:
    """revision -> down_revision of every file in alembic/versions/, as written there."""
    import ast

    chain: dict[str, object] = {}
    for path in sorted((ALEMBIC_DIR / "versions").glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = (node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1
                      else node.target if isinstance(node, ast.AnnAssign) else None)
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") \
                    and node.value is not None:
                values[target.id] = ast.literal_eval(node.value)
        if isinstance(values.get("revision"), str):
            chain[values["revision"]] = values.get("down_revision")
    return chain


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
    import sys

    from pgallery.errors import PgalleryError

    if argv[:1] != ["freeze"] or len(argv) > 2:
        print("usage: python -m pgallery.migrations freeze [REVISION]   (default: head)",
              file=sys.stderr)
        return 2
    try:
        print(freeze(argv[1] if len(argv) == 2 else head_revision()))
    except PgalleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
