-- restore_hnsw_index(): build painting_embedding's HNSW index if the table has none.
--
--   CALL restore_hnsw_index();
--
-- A bulk load drops the HNSW index and builds it once at the end (loading/writer.py). A
-- load killed in between (SIGKILL, a lost connection, power) keeps every committed batch
-- but leaves the table without the index, and searches fall back to reading every vector.
-- Every load ends with this call, as does `pgallery index build`, so the next one puts the
-- index back. Runs as its owner (creating an index needs the table's owner) so that
-- pgallery_writer's loads can call it; it builds nothing but the fixed index below.
CREATE OR REPLACE PROCEDURE restore_hnsw_index()
LANGUAGE plpgsql
SET search_path FROM CURRENT
SECURITY DEFINER  -- an index needs the table's owner; it builds only the fixed one below
AS $$
BEGIN
    -- two loads finishing together: one builds, the other then finds the index
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.restore_hnsw_index'));
    IF EXISTS (SELECT FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
               JOIN pg_catalog.pg_am am ON am.oid = c.relam
               WHERE i.indrelid = 'painting_embedding'::regclass AND am.amname = 'hnsw') THEN
        RETURN;
    END IF;
    RAISE NOTICE 'painting_embedding had no HNSW index (an interrupted bulk load?): building it';
    -- the baseline's shape (incremental/0012_baseline.sql): nearest_paintings orders by it
    CREATE INDEX painting_embedding_hnsw ON painting_embedding
        USING hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)
        WITH (m = 16, ef_construction = 64);
END
$$;
