"""painting_matches accepts year_to = 2147483647 (PostgreSQL's largest integer).

int4range(year_from, year_to, '[]') stores year_to + 1 as its exclusive upper bound, so a
search with year_to => 2147483647 failed with "integer out of range". Re-applies
sql/functions/00_helpers.sql (CREATE OR REPLACE: the other helpers come back unchanged, with
their grants); the downgrade restores 0003's painting_matches.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/00_helpers.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0007_year_to_at_integer_limit.down.sql")
