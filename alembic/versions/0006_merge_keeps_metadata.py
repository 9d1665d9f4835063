"""merge_staged_paintings keeps stored metadata that an input leaves NULL.

Loading another model's vectors from a file without, say, date and school columns
erased those fields of paintings loaded before. A NULL in staged input now means
"not given", so the stored value stays. Re-applies sql/functions/60_merge_staged_paintings.sql;
the downgrade restores 0003's definition.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/60_merge_staged_paintings.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0006_merge_keeps_metadata.down.sql")
