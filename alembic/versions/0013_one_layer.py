"""The search functions take their shared parameters from one list; privileges derived.

The seven filters and the recall knobs every search_* function takes are written once, in
sql/idempotent/_search_parameters.sql, and travel inside the functions as one
search_request value (nearest_paintings, painting_matches and estimated_matches take it).
The public signatures are unchanged. Who may EXECUTE what, and the checks on SECURITY
DEFINER routines, come from the catalog (sql/idempotent/99_privileges.sql).

No table changes: the step only replaces the layer (no index is rebuilt).

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
layer_sha256 = "32741125ae96315f5a0f5af2cd9da08ae89e9eae0cec4824aaae0249cbb8c54e"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
