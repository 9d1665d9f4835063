"""Recall measured on the collection: index_tuning, record_index_tuning(), and the
lost-query guard in nearest_paintings (issue 15).

`pgallery index tune` (and a load that changed the collection substantially) samples
stored vectors, sweeps ef_search or probes against their exact answers and records the
result here; the chosen value becomes the database default and its k-th-neighbour
distances set pgallery.lost_query_distance, above which a stored painting's first page is
answered exactly (a query that landed in the wrong region of the graph).

Revision ID: 0015
Revises: 0014
"""

from alembic import op

from pgallery.migrations import step

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "109c403973a434218f5c903163dd941df86f8f859a159668a4805f16f64ee531"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
