"""Palettes and search by colour: every painting's dominant colours, and a search by them.

- painting_palette (incremental/0016_palettes.sql): up to five CIE Lab colours and their
  shares per painting, the content hash of the image they came from, and a 216-d
  histogram over fixed anchor colours with an HNSW index (cosine).
- The layer adds sql/idempotent/26_search_by_colour.sql: search_by_colour(colours text[],
  <the search parameters>), its engine colour_page, colour_terms (the colours parsed),
  colour_scores (the exact score), the Lab conversion, palette_histogram and the trigger
  that fills a histogram written without one, colour_candidates (pgallery.colour_candidates).
- search_combined gains colours text[] DEFAULT NULL (a colour term in a composed query):
  its identity changes, so the step replaces it (a user's view over it stops the upgrade
  with the step's one-line message, as docs/migrations.md says).

Revision ID: 0016
Revises: 0015
"""

from alembic import op

from pgallery.migrations import step

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None
# sha256 of the layer this revision ships (tests/test_migrations.py checks it: a change to
# a landed layer needs a new revision, docs/migrations.md)
layer_sha256 = "0125bd5e7ba3ef21252c355e943260ea65c8c4e0d4dd1fc3a666b5cad2819c6a"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
