"""Recall per kind of query: the tuner measures stored paintings, new vectors and cached
prompts, and the lost-query guard covers every kind with a threshold of its own.

- index_tuning.kinds: what each kind gets at the chosen default (mean, p5, share under
  0.5, p50, guard firing rate, the kind's own choice and threshold), written by the new
  record_query_kinds() and shown by index_tuning_status().
- nearest_paintings reads pgallery.query_kind (set by the function a query came through:
  search_by_image 'stored', search_by_vector and search_combined 'vector', search_by_text,
  search_hybrid and composed queries with a prompt 'text') and applies that kind's guard
  threshold (pgallery.lost_query_distance, _vector, _text); a filtered first page beyond
  it walks the graph again with four times the candidates.

No public signature changes; index_tuning_status()'s body is a string so that it depends
on index_tuning's row type, not on its columns.

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
layer_sha256 = "099b68f4a3bf05ac33d35070f8a973508d80f673922185947bfb464a551b94a8"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
