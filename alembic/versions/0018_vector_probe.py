"""A second candidate source for new-vector queries: an IVFFlat index on the compact copy.

- build_vector_probe_index(lists) / drop_vector_probe_index(): the IVFFlat index
  painting_embedding_half_ivfflat on painting_embedding_half (lists = sqrt(rows)), built by
  `pgallery index tune` and the after-load steps from 1,000 rows, never on Citus.
- vector_probes(): how many of its lists a new-vector search reads (1.5 %, or the setting
  pgallery.vector_probes).
- nearest_paintings: queries that are not stored paintings merge the graph's page with
  the probe's nearest rows, re-ranked by exact distance (merged_page(), pages without
  repeats).
- probed_ef_search() (01_settings.sql): new vectors served by the probe walk the graph at
  pgallery.ef_search_probed, which record_query_kinds sets from the tuner's choice for
  them.
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
layer_sha256 = "1306f1a5e35dcbff7778a6fdfb8cd8c5636a0567dc96a09d0fceaf5e164b342a"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
