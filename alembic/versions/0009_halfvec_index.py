"""The HNSW and IVFFlat indexes hold normalised half-precision vectors.

A third of the index size, half the build time and memory, the same recall (bench/README.md,
section 5). The column stays vector(1024); nearest_paintings orders by
l2_normalize(embedding)::halfvec(1024), the indexes' expression, and returns distances
computed on the full vectors.

Upgrade: re-create build_ivfflat_index and nearest_paintings from sql/functions/, rebuild
the HNSW index (schema/0009_halfvec_index.sql) and an IVFFlat index if there is one
(schema/0009_rebuild_ivfflat.sql), then re-apply schema/0004_roles.sql (CREATE OR REPLACE
resets SECURITY DEFINER). On a large table the HNSW rebuild takes as long as a fresh build
(31 s at 100k rows, 470 s at 1M with maintenance_work_mem 4GB, on 2 cores). The downgrade
restores 0008's functions and the vector indexes the same way.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from pgallery.migrations import apply_in_migration

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_in_migration(op, "functions/50_build_ivfflat_index.sql",
                       "functions/10_nearest_paintings.sql", "schema/0009_halfvec_index.sql",
                       "schema/0009_rebuild_ivfflat.sql", "schema/0004_roles.sql")


def downgrade() -> None:
    apply_in_migration(op, "schema/0009_halfvec_index.down.sql",
                       "schema/0009_rebuild_ivfflat.sql", "schema/0004_roles.sql")
