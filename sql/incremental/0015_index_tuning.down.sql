-- Undo 0015_index_tuning.sql, and the database settings the measurements set: the guard's
-- threshold goes; hnsw.ef_search stays where the last measurement put it, which
-- tune_search_defaults() of 0014 then sizes to the collection again on the next load.
DROP TABLE IF EXISTS painting_embedding_half;
DROP TABLE IF EXISTS index_tuning;
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I RESET pgallery.lost_query_distance', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;
