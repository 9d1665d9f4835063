-- Downgrade of migration 0011: back to 0002's fixed default of 100, if the default is still
-- the one pgallery set; then the functions go.
DO $$
BEGIN
    IF database_setting('pgallery.tuned_ef_search') IS NOT NULL THEN
        IF database_setting('hnsw.ef_search') = database_setting('pgallery.tuned_ef_search')
        THEN
            EXECUTE format('ALTER DATABASE %I SET hnsw.ef_search = 100', current_database());
        END IF;
        EXECUTE format('ALTER DATABASE %I RESET pgallery.tuned_ef_search', current_database());
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;

DROP FUNCTION IF EXISTS tune_search_defaults(bigint);
DROP FUNCTION IF EXISTS recommended_ef_search(bigint);
DROP FUNCTION IF EXISTS database_setting(text);
