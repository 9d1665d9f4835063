-- build_ivfflat_index: (re)build the IVFFlat index from the vectors loaded now.
--
--   CALL build_ivfflat_index();          -- lists from the row count
--   CALL build_ivfflat_index(200);       -- or as given
--
-- IVFFlat clusters the vectors it is built on, so it must be built after loading, and
-- rebuilt when the collection has grown a lot. lists = rows / 1000 up to 1M rows,
-- sqrt(rows) beyond (pgvector's guidance), at least 1. The new index is built under a
-- temporary name and swapped in, so searches keep using the old one while it builds
-- (CREATE INDEX blocks writes, not reads).
-- With both HNSW and IVFFlat present the planner uses the cheaper one; searches set
-- ivfflat.probes from their `probes` argument or the session.
CREATE OR REPLACE PROCEDURE build_ivfflat_index(lists integer DEFAULT NULL)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SECURITY DEFINER  -- an index needs the table's owner; only an integer is formatted below
AS $$
DECLARE
    n bigint;
BEGIN
    IF lists IS NULL THEN
        SELECT count(*) INTO n FROM painting_embedding;
        lists := greatest(1, CASE WHEN n <= 1000000 THEN n / 1000
                                  ELSE floor(sqrt(n))::bigint END)::integer;
    ELSIF lists < 1 OR lists > 32768 THEN
        RAISE EXCEPTION 'lists must be between 1 and 32768, got %', lists
            USING ERRCODE = 'PGA06';
    END IF;
    DROP INDEX IF EXISTS painting_embedding_ivfflat_new;
    -- lists is an integer: format's %s cannot inject anything here
    -- The same normalised half-precision shape as the HNSW index (migration 0009), which
    -- is what nearest_paintings orders by.
    EXECUTE format('CREATE INDEX painting_embedding_ivfflat_new ON painting_embedding '
                   'USING ivfflat ((l2_normalize(embedding)::halfvec(1024)) '
                   'halfvec_cosine_ops) WITH (lists = %s)', lists);
    DROP INDEX IF EXISTS painting_embedding_ivfflat;
    ALTER INDEX painting_embedding_ivfflat_new RENAME TO painting_embedding_ivfflat;
    RAISE NOTICE 'built painting_embedding_ivfflat with % lists', lists;
END
$$;

-- Drop it again (searches fall back to HNSW).
CREATE OR REPLACE PROCEDURE drop_ivfflat_index()
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DROP INDEX IF EXISTS painting_embedding_ivfflat;
END
$$;
