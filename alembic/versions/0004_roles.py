"""Least-privilege roles: pgallery_reader (search, read metadata) and pgallery_writer (load).

Applies sql/schema/0004_roles.sql: creates the roles when missing (they are cluster-wide),
grants what each needs in this database, makes the functions that read vectors on the
reader's behalf SECURITY DEFINER, and revokes EXECUTE on entry points from PUBLIC. The
downgrade revokes everything and drops the roles only if nothing else depends on them.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from pgallery.migrations import apply_sql_file, pin_search_path

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _conn():
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    conn = _conn()
    pin_search_path(conn)
    apply_sql_file(conn, "schema/0004_roles.sql")


def downgrade() -> None:
    conn = _conn()
    pin_search_path(conn)
    apply_sql_file(conn, "schema/0004_roles.down.sql")
