"""use_model switches in two UPDATEs (old off, then new on) under a row lock.

The single UPDATE of 0003 flipped both rows in one statement and failed with a unique
violation on embedding_model_one_active whenever it met the new row before the old one,
which depends on where the rows sit in the heap (after a few switches, half the time).
Re-applies sql/functions/40_models.sql; the downgrade restores 0003's definition.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/40_models.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0005_use_model.down.sql")
