-- The database's default hnsw.ef_search, sized to the collection.
--
--   SELECT tune_search_defaults();                    -- for the vectors stored now
--   SELECT tune_search_defaults(vectors => 2000000);  -- for the size you are heading to
--   SELECT recommended_ef_search(1000000);            -- what it would pick: 150
--
-- Recall at a fixed ef_search falls as the HNSW graph grows. On the benchmark's data
-- (bench/README.md) ef_search 60-100 reaches recall@10 0.983 at 100k vectors, while 1M
-- vectors need 150 for 0.980 (100 gives 0.934 there). Migration 0002 set the database
-- default to 100 for every size; pgallery's loader now calls tune_search_defaults() after
-- each load, so the default follows the collection: for new sessions, for the search_*
-- functions and hand-written queries alike. Sessions and calls still override it.

-- A setting of the current database (ALTER DATABASE ... SET), as text; NULL if not set.
CREATE OR REPLACE FUNCTION database_setting(setting_name text) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
BEGIN ATOMIC
    SELECT substr(entry, length(setting_name) + 2)
    FROM pg_catalog.pg_db_role_setting s
    JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
    CROSS JOIN LATERAL unnest(s.setconfig) AS entry
    WHERE d.datname = current_database() AND s.setrole = 0
      AND entry LIKE setting_name || '=%';
END;

-- ef = 60 * (vectors / 100k)^0.4, fitted to the two measured sizes (60 suffices at 100k,
-- 150 at 1M), rounded to tens, kept between the migration's 100 and pgvector's maximum
-- of 1000. Beyond 1M it is an extrapolation: 200 at 2M, 380 at 10M.
CREATE OR REPLACE FUNCTION recommended_ef_search(vectors bigint) RETURNS integer
LANGUAGE sql IMMUTABLE
RETURN least(1000, greatest(100,
           round(60 * power(greatest(vectors, 0) / 100000.0, 0.4) / 10)::integer * 10));

-- Set the database default hnsw.ef_search to recommended_ef_search() of `vectors`, or of
-- the vectors painting_embedding holds by the planner's statistics (ANALYZE first). Returns
-- the default new sessions get.
--
-- Only a default pgallery set is changed: each one is recorded beside it in
-- pgallery.tuned_ef_search (migration 0011 records 0002's 100), and a default that differs
-- from that record, or has none, was set by someone else: it is kept, with a notice.
-- Runs as its owner (the migrating role, which owns the database) so that
-- pgallery_writer's loads can call it; it formats nothing but an integer into its
-- statements. Without the database's ownership it changes nothing and says so.
CREATE OR REPLACE FUNCTION tune_search_defaults(vectors bigint DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SECURITY DEFINER  -- ALTER DATABASE needs its owner; only an integer is formatted below
AS $$
DECLARE
    current_default text;
    recorded text;
    wanted integer;
BEGIN
    -- Two loads finishing together would update the same catalog row ("tuple concurrently
    -- updated"): one at a time, each reading the settings after the other's change.
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.tune_search_defaults'));
    current_default := database_setting('hnsw.ef_search');
    recorded := database_setting('pgallery.tuned_ef_search');
    IF vectors IS NULL THEN
        SELECT greatest(c.reltuples, 0)::bigint INTO vectors
        FROM pg_catalog.pg_class c WHERE c.oid = 'painting_embedding'::regclass;
    END IF;
    wanted := recommended_ef_search(vectors);
    -- A measurement on the collection itself (index_tuning, `pgallery index tune`) knows
    -- better than a formula fitted to synthetic data: while one governs the default, keep it.
    IF EXISTS (SELECT FROM index_tuning t
               WHERE t.setting = 'hnsw.ef_search' AND t.chosen IS NOT NULL
                 AND t.chosen::text = current_default) THEN
        RETURN current_default::integer;
    END IF;
    IF recorded IS NULL OR current_default IS DISTINCT FROM recorded THEN
        RAISE NOTICE 'hnsw.ef_search is % for this database, not set by pgallery: '
                     'kept (% would suit % vectors)',
            coalesce(current_default, 'not set'), wanted, vectors;
        RETURN current_default::integer;
    END IF;
    IF current_default = wanted::text THEN
        RETURN wanted;                  -- nothing to change: no catalog write
    END IF;
    -- wanted is an integer: format's %s cannot inject anything here
    EXECUTE format('ALTER DATABASE %I SET hnsw.ef_search = %s', current_database(), wanted);
    EXECUTE format('ALTER DATABASE %I SET pgallery.tuned_ef_search = %s',
                   current_database(), wanted);
    RETURN wanted;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'not the database owner: hnsw.ef_search stays %',
        coalesce(current_default, 'unset');
    RETURN current_default::integer;
END
$$;
