"""Search functions: every file in sql/functions/, in name order.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from pgallery.migrations import apply_sql_file, function_files, pin_search_path

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _conn():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    conn = _conn()
    pin_search_path(conn)
    for path in function_files():
        apply_sql_file(conn, path)


def downgrade() -> None:
    conn = _conn()
    pin_search_path(conn)
    apply_sql_file(conn, "schema/0003_search_functions.down.sql")
