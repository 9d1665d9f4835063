-- The approximate-nearest-neighbour index, applied by alembic/versions/0002_vector_indexes.py.
--
-- HNSW over cosine distance (Azure AI Vision's recommended metric). m=16, ef_construction=64
-- are pgvector's defaults; bench/ measures them against the alternatives. The index covers
-- every model's vectors: searches filter on the model, and pgvector 0.8's iterative index
-- scans keep reading the graph until enough rows pass that filter.
--
-- IVFFlat needs training data, so it is not created here: CALL build_ivfflat_index() after a
-- bulk load (the CLI's `pgallery index build` does).
CREATE INDEX painting_embedding_hnsw ON painting_embedding
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

-- Keep the per-model filter cheap when a second model's vectors are loaded alongside.
CREATE INDEX painting_embedding_model ON painting_embedding (model);

-- Keep each 4 KB vector in its heap row (STORAGE PLAIN) instead of TOAST's out-of-line
-- chunks (pgvector's default, EXTERNAL). Every exact read (exact mode, the pre-filter path
-- over the paintings a rare filter matches, the distance of each returned row) then costs
-- one heap page instead of a TOAST index lookup and three chunk reads: 4-7x faster exact
-- reads and 3.6x faster full scans at 100k rows, for a 45% larger table (one row per 8 kB
-- page). Measured by bench/storage_bench.py (bench/README.md, "Storage").
ALTER TABLE painting_embedding ALTER COLUMN embedding SET STORAGE PLAIN;
