-- Applied by alembic/versions/0011_search_defaults.py after functions/70_search_defaults.sql.

-- tune_search_defaults runs as its owner so that pgallery_writer's loads can call it (see
-- the function's comment and 0004_roles.sql's SECURITY DEFINER review); nobody else may.
ALTER FUNCTION tune_search_defaults SECURITY DEFINER;
REVOKE EXECUTE ON FUNCTION tune_search_defaults FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tune_search_defaults TO pgallery_writer;

-- Record migration 0002's default as pgallery's, so tune_search_defaults may change it; a
-- database whose default was changed by hand keeps it. Then size it to what is stored.
DO $$
BEGIN
    IF database_setting('hnsw.ef_search') = '100'
       AND database_setting('pgallery.tuned_ef_search') IS NULL THEN
        EXECUTE format('ALTER DATABASE %I SET pgallery.tuned_ef_search = 100',
                       current_database());
    END IF;
    PERFORM tune_search_defaults();
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'not the database owner: hnsw.ef_search keeps its default';
END
$$;
