"""Every search function takes min_similarity, order_by and page; composed queries
(search_combined) and near-duplicate groups (near_duplicates) join the layer (issue 14).

Three lines in sql/idempotent/_search_parameters.sql reach all four search functions'
signatures and the search_request type; nearest_paintings skips the earlier pages' rows in
the same scan and finished_page() applies the cut-off and the order. Positional calls of
search_hybrid's rrf_k and candidates move three places right (named ones are unchanged).

No table changes: the step only replaces the layer.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

from pgallery.migrations import step

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "6c8430116d4b2822c890c4521d43fff107d2aaf3cf4bd4696b1391cf4cae5452"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
