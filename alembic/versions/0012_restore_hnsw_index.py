"""A load puts back the HNSW index an interrupted bulk load left dropped.

A bulk load drops painting_embedding's HNSW index and builds it at the end; killed in
between, it left the table without one (searches then read every vector) until someone
noticed. restore_hnsw_index() builds it when missing; every load and `pgallery index
build` call it.

Applies sql/functions/80_restore_hnsw_index.sql and schema/0012_restore_hnsw_index.sql;
the downgrade drops the procedure.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/80_restore_hnsw_index.sql",
                       "schema/0012_restore_hnsw_index.sql")


def downgrade() -> None:
    op.execute("DROP PROCEDURE IF EXISTS restore_hnsw_index()")
