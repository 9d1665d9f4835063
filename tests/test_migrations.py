"""Alembic owns the database: every migration upgrades and downgrades cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgallery import migrations
from pgallery.search import EF_SEARCH_FLOOR

REPO = Path(__file__).resolve().parents[1]

OBJECTS = """
SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'),
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.proname LIKE ANY (ARRAY['search_%', 'nearest_%',
              'merge_%', 'register_model', 'use_model', 'parse_year_range', 'build_ivfflat_index'])),
       (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typname = 'search_result'),
       -- every function of ours, whatever its name (pgvector's belong to its extension)
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e'))
"""


def objects(url):
    with psycopg.connect(url) as conn:
        return conn.execute(OBJECTS).fetchone()


def test_upgrade_downgrade_upgrade_leaves_the_same_schema(make_database):
    url = make_database(migrate=False)
    migrations.upgrade(url)
    after_first = objects(url)
    assert after_first[0] == 5 and after_first[1] >= 8 and after_first[2] == 1
    migrations.downgrade(url, "base")
    assert objects(url) == (0, 0, 0, 0)
    assert migrations.current_revision(url) is None
    migrations.upgrade(url)
    assert objects(url) == after_first
    assert migrations.current_revision(url) == migrations.head_revision()


# every revision but head: downgrading to it runs the next migration's downgrade
EARLIER_REVISIONS = sorted(p.name[:4] for p in (REPO / "alembic" / "versions").glob("0*.py"))[:-1]


@pytest.mark.parametrize("step", EARLIER_REVISIONS)
def test_each_migration_downgrades_on_its_own(make_database, step):
    url = make_database()
    migrations.downgrade(url, step)
    assert migrations.current_revision(url) == step
    migrations.upgrade(url)
    assert migrations.current_revision(url) == migrations.head_revision()


def test_the_migration_sets_the_ef_search_floor_as_the_database_default(db_url):
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT '[1]'::vector")  # load pgvector so its settings are known
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == str(EF_SEARCH_FLOOR)


def test_functions_resolve_names_only_in_pinned_schemas(db_url):
    with psycopg.connect(db_url) as conn:
        configs = conn.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            " AND p.proname LIKE 'search_%'").fetchall()
    assert len(configs) == 4
    for name, config in configs:
        assert any(c.startswith("search_path=") and "pg_temp" in c for c in config), name


def test_alembic_upgrade_head_from_the_repo_root_works_on_a_given_database(make_database):
    url = make_database(migrate=False)
    env = dict(os.environ, DATABASE_URL=url)
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert migrations.current_revision(url) == migrations.head_revision()


def test_old_pgvector_is_refused_with_a_clear_message(db_url):
    with psycopg.connect(db_url) as conn:
        assert migrations._version_tuple("0.7.4") < migrations.MIN_PGVECTOR
        assert migrations.check_pgvector(conn) >= "0.8.4"
