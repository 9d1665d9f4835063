"""Alembic environment: resolves the database the way pgallery does.

`alembic upgrade head` from the repository root works with nothing set up: without
DATABASE_URL it starts the embedded PostgreSQL under $PGALLERY_HOME (./.pgallery).
`alembic -x database_url=postgresql://... upgrade head` overrides both.
"""

from alembic import context
from sqlalchemy import create_engine, pool

from pgallery.database.connection import resolve_url, sqlalchemy_url

config = context.config


def database_url() -> str:
    return (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("database_url")
        or resolve_url()
    )


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(database_url()), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("pgallery's migrations run against a live database (no --sql mode)")
run_migrations_online()
