"""Citus: every search function works on a coordinator whose collection is sharded.

No table changes; the layer only (the layout itself is the migration runner's step after
the revisions, pgallery.citus_layout, on a Citus coordinator and nowhere else):

- distributed_table(rel) says whether painting_embedding is sharded; the functions take
  their Citus branches on it, at run time, so a single server runs as before.
- shard_search_settings(ef_search, probes): the call's recall settings sent to the
  workers (SET LOCAL under citus.propagate_set_commands = 'local'); nearest_paintings and
  near_duplicates call it there, and nearest_paintings plans its unfiltered ANN statement
  per call there (Citus cannot plan a multi-shard statement generically).
- painting_matches is called with ROW(p.*)::painting (a shard's row type is its own);
  near_duplicates searches painting by painting there (no lateral join over shards);
  search_hybrid joins the distances with a plain outer join.
- The compact copy's triggers are created only where painting_embedding is not sharded;
  merge_staged_paintings fills the copy itself where it is.
- What Citus refuses in a write to its tables goes: now() in ON CONFLICT ... DO UPDATE
  (merge_staged_paintings, store_prompt_embedding), a subquery in register_model's
  INSERT, a temporary table joined in a DELETE; prompt_vector's body is a string.

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
layer_sha256 = "310ac171808ad0cabc373c84bce01c358f62d40ac8afc45f864cbe39d38af5e7"


def upgrade() -> None:
    step(op, revision)


def downgrade() -> None:
    step(op, revision, down=True)
