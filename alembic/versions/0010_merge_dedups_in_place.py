"""merge_staged_paintings removes duplicate input rows in place instead of copying the batch.

The merge copied every staged row, 4 kB vector included, into a deduplicated temporary
table before writing paintings and embeddings: 0.39 s of a 2.4 s merge for 20k rows
(bench/load_bench.py). The earlier rows for an image_file named twice are now deleted from
the staging table itself; the last row still wins. Re-applies
sql/functions/60_merge_staged_paintings.sql; the downgrade restores 0006's definition.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/60_merge_staged_paintings.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0010_merge_dedups_in_place.down.sql")
