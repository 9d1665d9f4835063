DROP INDEX IF EXISTS painting_embedding_ivfflat;
DROP INDEX IF EXISTS painting_embedding_model;
DROP INDEX IF EXISTS painting_embedding_hnsw;
