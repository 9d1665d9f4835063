"""Schema: models, paintings, embeddings, prompt cache, failures, metadata indexes.

Applies sql/schema/0001_schema.sql after checking the server's pgvector (>= 0.8.4).

Revision ID: 0001
Revises:
"""

from alembic import op

from pgallery.migrations import apply_sql_file, check_pgvector, pin_search_path

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _conn():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    conn = _conn()
    check_pgvector(conn)
    pin_search_path(conn)
    apply_sql_file(conn, "schema/0001_schema.sql")
    check_pgvector(conn)  # the installed version, if the extension already existed


def downgrade() -> None:
    conn = _conn()
    pin_search_path(conn)
    apply_sql_file(conn, "schema/0001_schema.down.sql")
