"""The map: a 2-D position for every painting of a model, and what a viewport shows.

- painting_map (model, painting_id, x, y in [0, 1], sample_rank, placed_by, and the
  generated level and tile): written by `pgallery map layout` (a full layout, one
  transaction) and by place_on_map() (new paintings beside their nearest neighbours).
  A GiST index on tile (each sampling level in a band of its own) answers viewports.
- map_points(x0, y0, x1, y1, lim, filters..., model): at most lim paintings in a box,
  lowest sample_rank first (STABLE: pgallery_reader).
- place_on_map(model, neighbours): places the paintings with a vector and no position
  (VOLATILE: pgallery_writer).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

from pgallery.migrations import step

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "8f7efc46e78a2c17b0ade9539e1a703c18e1e4f29e1dd2370a1b2aa82b216e46"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
