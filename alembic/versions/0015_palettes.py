"""Palettes and search by colour: every painting's dominant colours, and a search by them.

- painting_palette (incremental/0015_palettes.sql): up to five CIE Lab colours and their
  shares per painting, the content hash of the image they came from, and a 216-d
  histogram over fixed anchor colours with an HNSW index (cosine).
- The layer adds sql/idempotent/26_search_by_colour.sql: search_by_colour(colours text[],
  <the search parameters>), its engine colour_page, colour_terms (the colours parsed),
  colour_scores (the exact score), the Lab conversion, palette_histogram and the trigger
  that fills a histogram written without one, colour_candidates (pgallery.colour_candidates).
- search_combined gains colours text[] DEFAULT NULL (a colour term in a composed query):
  its identity changes, so the step replaces it (a user's view over it stops the upgrade
  with the step's one-line message, as docs/migrations.md says).

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
layer_sha256 = "5947c61a96580f2276a2789f6b80536d307c65e4dba6c7635253276b41c25afa"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
