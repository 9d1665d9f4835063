"""Filtered search asks the planner how many paintings match before counting them.

nearest_paintings chose between the exact path and the HNSW iterative scan by counting the
matching paintings up to prefilter_limit. When many match, that count went through a bitmap
index scan that reads every match before LIMIT applies: 2-4 ms of a 4-9 ms search at 100k
rows, tens of milliseconds at 1M. The planner's estimate (estimated_matches, an EXPLAIN of
the filter) now decides, and the bounded count runs only when the estimate is within 2x of
prefilter_limit or painting has no statistics yet.

Re-applies sql/functions/10_nearest_paintings.sql, then schema/0004_roles.sql (CREATE OR
REPLACE resets nearest_paintings' SECURITY DEFINER); the downgrade restores 0003's
definition and drops estimated_matches.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/10_nearest_paintings.sql", "schema/0004_roles.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0008_filter_estimate.down.sql", "schema/0004_roles.sql")
