"""A database's schema as plain data, to compare two databases object by object.

`schema_of(url)` reads what pgallery's migrations own in the current schema: tables and
their columns, constraints and indexes; functions and procedures with their full
definitions and properties (SECURITY DEFINER, volatility, SET clauses, who may EXECUTE);
types; the grants on tables, columns, the schema and the database; the roles' membership;
and the database-level settings. Object ids and anything a server assigns by itself are
left out, so two databases reached by different paths compare equal when they hold the
same schema.
"""

from __future__ import annotations

import psycopg

QUERIES = {
    "tables": """
        SELECT c.relname, c.relkind::text, coalesce(array_to_string(c.relacl, ','), '')
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
        ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attgenerated::text,
               coalesce(array_to_string(a.attacl, ','), ''), a.attstorage::text
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND a.attnum > 0
          AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "constraints": """
        SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE c.relnamespace = current_schema()::regnamespace
        ORDER BY 1, 2""",
    "indexes": """
        SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relnamespace = current_schema()::regnamespace
        ORDER BY 1, 2""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
        ORDER BY 1, 2""",
    "routines": """
        SELECT p.oid::regprocedure::text, p.prokind::text, p.prosecdef, p.provolatile::text,
               p.proparallel::text, coalesce(array_to_string(p.proconfig, ','), ''),
               coalesce(array_to_string(p.proacl, ','), '(default)'),
               pg_get_functiondef(p.oid)
        FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
        ORDER BY 1""",
    "types": """
        SELECT t.typname, t.typtype::text,
               coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid,
                                           a.atttypmod), ', ' ORDER BY a.attnum)
                         FROM pg_attribute a
                         WHERE a.attrelid = t.typrelid AND a.attnum > 0), '')
        FROM pg_type t
        WHERE t.typnamespace = current_schema()::regnamespace
          AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c
                                    WHERE c.oid = t.typrelid) = 'c')
          AND t.typelem = 0
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
        ORDER BY 1""",
    "schema_acl": """
        SELECT coalesce(array_to_string(n.nspacl, ','), '') FROM pg_namespace n
        WHERE n.oid = current_schema()::regnamespace""",
    "database_acl": """
        SELECT coalesce(array_to_string(d.datacl, ','), '') FROM pg_database d
        WHERE d.datname = current_database()""",
    "database_settings": """
        SELECT coalesce(array_to_string(s.setconfig, ','), '')
        FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database() AND s.setrole = 0""",
    "roles": """
        SELECT r.rolname, r.rolcanlogin,
               coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                         FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                         WHERE m.member = r.oid), '')
        FROM pg_roles r WHERE r.rolname LIKE 'pgallery%'
        ORDER BY 1""",
}


def schema_of(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        # the ACLs name the database's owner, who differs between test databases only by
        # nothing: keep them as they are
        return {name: [tuple(row) for row in conn.execute(query).fetchall()]
                for name, query in QUERIES.items()}


def differences(a: dict, b: dict) -> list[str]:
    """Human-readable lines for every object that differs between two schemas."""
    lines = []
    for kind in QUERIES:
        left, right = set(a.get(kind, [])), set(b.get(kind, []))
        for row in sorted(left - right, key=str):
            lines.append(f"{kind}: only in the first:  {str(row)[:300]}")
        for row in sorted(right - left, key=str):
            lines.append(f"{kind}: only in the second: {str(row)[:300]}")
    return lines


def pgallery_objects(schema: dict) -> dict[str, list[tuple]]:
    """What of pgallery's is left: everything but alembic's bookkeeping table."""
    keep = {}
    for kind, rows in schema.items():
        if kind in ("tables", "columns", "constraints", "indexes"):
            rows = [r for r in rows if r[0] != "alembic_version"]
        if kind in ("schema_acl", "database_acl", "database_settings", "roles"):
            continue
        keep[kind] = rows
    return keep
