"""Alembic environment: resolves the database the way pgallery does.

`alembic upgrade head` from the repository root works with nothing set up: without
DATABASE_URL it starts the embedded PostgreSQL under $PGALLERY_HOME (./.pgallery).
`alembic -x database_url=postgresql://... upgrade head` overrides both. Installed from a
wheel, the same file runs as pgallery/alembic/env.py under `pgallery alembic ...`.

Every command checks the database's revision first (pgallery.migrations._known_revision),
so a database at a folded or unknown revision gets the same one-line message from
`alembic` as from `pgallery migrate`, never Alembic's "Can't locate revision"; so do the
other errors pgallery reports in one line (a server that cannot be reached, an old pgvector).
"""

import logging
import sys

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

from pgallery.database.connection import resolve_url, sqlalchemy_url
from pgallery.errors import DatabaseError, PgalleryError
from pgallery.migrations import (_known_revision, distribute_on_citus,
                                 refuse_below_citus_support)

config = context.config


def database_url() -> str:
    # pgallery's own callers pass the URL; `pgallery alembic` passes its settings (so that
    # --database-url and --home count, and commands that never run this start nothing)
    return (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("database_url")
        or resolve_url(config.attributes.get("settings"))
    )


def show_progress() -> None:
    """Say each step as Alembic's own template does (-q: nothing)."""
    if not getattr(config.cmd_opts, "quiet", False):
        logging.basicConfig(format="%(levelname)-5.5s [%(name)s] %(message)s")
        logging.getLogger("alembic").setLevel(logging.INFO)


def run_migrations_online() -> None:
    url = database_url()
    _known_revision(url)
    # the revision as the command was given it ('0014', 'base', 'head', '-1'), read where
    # Alembic keeps it (get_revision_argument() turns 'base' into None and raises for a
    # command that moves nothing, such as current)
    refuse_below_citus_support(url, context._proxy.context_opts.get("destination_rev"))
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    # on a Citus coordinator, the tables the revisions made are then spread over the
    # workers (pgallery.citus_layout); elsewhere nothing happens
    distribute_on_citus(url)


def on_the_command_line() -> None:
    """Alembic's command line would print a traceback for pgallery's errors: print the
    line `pgallery migrate` prints, and exit with its code."""
    show_progress()
    try:
        run_migrations_online()
    except psycopg.OperationalError as error:
        fail(DatabaseError(f"database error: {error}".strip()))
    except PgalleryError as error:
        fail(error)


def fail(error: PgalleryError) -> None:
    print(f"Error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_code) from None


if context.is_offline_mode():
    raise SystemExit("pgallery's migrations run against a live database (no --sql mode)")
if config.cmd_opts is None:
    run_migrations_online()      # called from Python (pgallery migrate): the caller reports
else:
    on_the_command_line()        # alembic ..., or pgallery alembic ...
