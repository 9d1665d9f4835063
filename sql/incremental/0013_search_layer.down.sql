-- Undo 0013_search_layer.sql, and the database setting the measurements set: the guard's
-- threshold goes; hnsw.ef_search stays where the last measurement put it, which
-- 0012's tune_search_defaults() sizes to the collection again on the next load.
DROP TABLE IF EXISTS painting_embedding_half;
DROP TABLE IF EXISTS index_tuning;
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I RESET pgallery.lost_query_distance', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;
