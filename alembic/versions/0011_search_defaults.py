"""The database's default hnsw.ef_search follows the collection's size.

0002 set hnsw.ef_search = 100 for every size. That reaches recall@10 0.983 at 100k vectors
but 0.934 at 1M, where 150 is needed for 0.980 (bench/README.md, "1M"). The new
tune_search_defaults() sets the database default to recommended_ef_search() of the stored
vectors, but only while the default is the one pgallery set (recorded in
pgallery.tuned_ef_search); the loader calls it after every load, and this migration once.

Applies sql/functions/70_search_defaults.sql and schema/0011_search_defaults.sql; the
downgrade puts back 0002's 100 (if the default is still pgallery's) and drops the functions.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/70_search_defaults.sql", "schema/0011_search_defaults.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0011_search_defaults.down.sql")
