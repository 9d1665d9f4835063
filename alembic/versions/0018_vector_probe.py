"""A second candidate source for new-vector queries: an IVFFlat index on the compact copy.

- build_vector_probe_index(lists) / drop_vector_probe_index(): the IVFFlat index
  painting_embedding_half_ivfflat on painting_embedding_half (lists = sqrt(rows)), built by
  `pgallery index tune` and the after-load steps from 1,000 rows, never on Citus.
- vector_probes(): how many of its lists a new-vector search reads (1.5 %, or the setting
  pgallery.vector_probes).
- nearest_paintings: queries that are not stored paintings merge the graph's page with
  the probe's nearest rows, re-ranked by exact distance.
- Downgrade drops the index (the layer below has no use for it).

Revision ID: 0018
Revises: 0017
"""

from alembic import op

from pgallery.migrations import step

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "05329f15655a5d67adc1d20334f84af6d79a7e07263c38ba899fda6b2f0b9871"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
