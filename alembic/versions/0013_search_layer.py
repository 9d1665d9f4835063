"""The search layer in the new layout: shared parameters, pages, composed queries, near
duplicates, recall measured on the collection, exact search on a compact copy.

- The parameters every search_* function takes after its query are written once
  (sql/idempotent/_search_parameters.sql) and travel as one search_request value; public
  signatures keep their names, and gain min_similarity, order_by and page (issue 14).
- search_combined() and near_duplicates() (issue 14).
- index_tuning, record_index_tuning(), index_tuning_status(): `pgallery index tune`
  records its measurement and makes it the default; the lost-query guard in
  nearest_paintings (issue 15).
- painting_embedding_half, a normalised half-precision copy of every vector kept in the
  row, which exact search scans before re-ranking on the full vectors (issue 15).
- Privileges derived from the catalog (99_privileges.sql), SECURITY DEFINER in each
  definition (issue 12).

Nothing of painting_embedding is rebuilt: the step fills the compact copy (5.4 s at 100k)
and replaces the layer. Positional calls of search_hybrid's rrf_k and candidates move three
places right (named ones are unchanged).

Revision ID: 0013
Revises: 0012
"""

from alembic import op

from pgallery.migrations import step

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "9bfaa6eb045eeb5f198dd6bf638757b7f16cb16287a4e4722f3f679a9c6a5706"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
