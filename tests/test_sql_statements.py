"""sql_statements: a run-once file split into its statements, for a Citus coordinator,
which sends some DDL on to its workers as the text it was given (one statement each)."""

from __future__ import annotations

import pytest

from pgallery.migrations import INCREMENTAL_DIR, sql_statements


def test_semicolons_inside_strings_bodies_and_comments_end_nothing():
    text = """-- a comment; with a semicolon
CREATE TABLE t (a text DEFAULT 'x;y', "odd;name" int);
/* a block; comment */
DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
COMMENT ON TABLE t IS 'it''s; fine';
-- trailing comment
"""
    statements = [s.strip() for s in sql_statements(text)]
    assert len(statements) == 4
    assert statements[0].endswith("""CREATE TABLE t (a text DEFAULT 'x;y', "odd;name" int)""")
    assert statements[1].endswith("DO $$ BEGIN PERFORM 1; PERFORM 2; END $$")
    assert statements[2].startswith("CREATE FUNCTION") and statements[2].endswith("$body$")
    assert statements[3] == "COMMENT ON TABLE t IS 'it''s; fine'"


KEYWORDS = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "GRANT", "REVOKE",
            "DO", "COMMENT", "SELECT", "SET", "WITH", "TRUNCATE", "ANALYZE")


def _without_comments(statement: str) -> str:
    lines = [line for line in statement.splitlines() if not line.strip().startswith("--")]
    return "\n".join(lines).strip()


@pytest.mark.parametrize("path", sorted(INCREMENTAL_DIR.glob("*.sql")), ids=lambda p: p.name)
def test_every_run_once_file_splits_at_its_statements_and_nowhere_else(path):
    statements = [_without_comments(s) for s in sql_statements(path.read_text("utf-8"))]
    assert statements, path.name
    # a cut inside a function body or a string would leave a piece starting mid-statement
    assert [s.split()[0].upper() for s in statements
            if s.split()[0].upper() not in KEYWORDS] == []
