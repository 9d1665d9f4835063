"""Baseline: the schema that migrations 0001-0012 built, in the layout of docs/migrations.md.

Databases migrated before the layout changed are at 0012 and go on from here; a new
database gets the same tables, indexes, roles and settings from
sql/incremental/0012_baseline.sql and the same functions from sql/releases/0012.sql.

Revision ID: 0012
Revises: (none)
"""

from alembic import op

from pgallery.migrations import check_pgvector, step

revision = "0012"
down_revision = None
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "de748b18cc7f86962f36fdd113a92cfbe104db17f87192c111448616529fef2f"


def upgrade() -> None:
    check_pgvector(op.get_bind().connection.driver_connection)
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
