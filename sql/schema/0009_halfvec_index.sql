-- Migration 0009: the ANN indexes hold normalised half-precision vectors.
--
-- Measured at 100k (bench/README.md, section 5): an HNSW index over halfvec is a third of
-- the size of one over vector (260 vs 781 MB: a 2 kB element fits three to a page, a 4 kB
-- one takes a page of its own), builds in half the time and half the memory, and ranks
-- with the same recall. The column keeps the full single-precision vectors: distances are
-- computed on them, and the exact path reads them.
--
-- The index is built on l2_normalize(embedding)::halfvec(1024): cosine distance ignores
-- length, and a normalised vector's values fit halfvec's range (+-65504) whatever a loaded
-- file held. nearest_paintings orders by the same expression (sql/functions/).

DROP INDEX IF EXISTS painting_embedding_hnsw;
CREATE INDEX painting_embedding_hnsw ON painting_embedding
    USING hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)
    WITH (m = 16, ef_construction = 64);
