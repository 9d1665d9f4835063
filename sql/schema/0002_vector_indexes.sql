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

-- The embedding column keeps pgvector's storage (EXTERNAL: a 4 kB vector lives in TOAST).
-- bench/storage_bench.py measured STORAGE PLAIN (in the heap row) against it at 100k rows:
-- equal search latency and exact reads within 10%, for a 45% larger table, so no change.
