-- Undo 0012_baseline.sql (the layer's functions are dropped before this runs). The
-- extensions stay: other schemas may use them.

-- The search defaults: hnsw.ef_search only while it is the one pgallery set (recorded in
-- pgallery.tuned_ef_search); a default set by hand stays.
DO $$
DECLARE
    settings text[] := (SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s
                        JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                        WHERE d.datname = current_database() AND s.setrole = 0);
BEGIN
    IF (SELECT substr(e, 16) FROM unnest(settings) e WHERE e LIKE 'hnsw.ef\_search=%')
       = (SELECT substr(e, 26) FROM unnest(settings) e
          WHERE e LIKE 'pgallery.tuned\_ef\_search=%') THEN
        EXECUTE format('ALTER DATABASE %I RESET hnsw.ef_search', current_database());
    END IF;
    EXECUTE format('ALTER DATABASE %I RESET pgallery.tuned_ef_search', current_database());
    EXECUTE format('ALTER DATABASE %I RESET ivfflat.probes', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;

-- The roles: this database's grants revoked, PUBLIC's TEMPORARY given back. The roles are
-- cluster-wide: they are dropped only when nothing anywhere still depends on them (no other
-- database grants them anything, they own nothing); otherwise they stay, with a NOTICE.
-- CREATE on the schema stays revoked from PUBLIC (PostgreSQL 15+'s default anyway).
DO $$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'not the owner of database %: TEMPORARY not given back to PUBLIC',
                  current_database();
END
$$;

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['pgallery_writer', 'pgallery_reader'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name);
        EXECUTE format('REVOKE ALL ON painting, painting_embedding, embedding_model, '
                       'prompt_embedding, embedding_failure, alembic_version FROM %I',
                       role_name);
        EXECUTE format('REVOKE ALL (painting_id, model, content_hash, embedded_at) '
                       'ON painting_embedding FROM %I', role_name);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I',
                       current_schema(), role_name);
        EXECUTE format('REVOKE ALL ON ALL PROCEDURES IN SCHEMA %I FROM %I',
                       current_schema(), role_name);
        BEGIN
            EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', current_schema(), role_name);
            EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), role_name);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'could not revoke % privileges on the schema or database',
                          role_name;
        END;
        IF EXISTS (SELECT FROM pg_catalog.pg_shdepend d
                   WHERE d.refclassid = 'pg_catalog.pg_authid'::regclass
                     AND d.refobjid = (SELECT oid FROM pg_catalog.pg_roles
                                       WHERE rolname = role_name)) THEN
            RAISE NOTICE 'role % kept: it owns objects or holds privileges elsewhere '
                         '(another database)', role_name;
        ELSE
            EXECUTE format('DROP ROLE %I', role_name);
        END IF;
    END LOOP;
END
$$;

DROP TABLE IF EXISTS embedding_failure;
DROP TABLE IF EXISTS prompt_embedding;
DROP TABLE IF EXISTS painting_embedding;
DROP TABLE IF EXISTS painting;
DROP TABLE IF EXISTS embedding_model;
DROP FUNCTION IF EXISTS parse_year_range(text);
DROP FUNCTION IF EXISTS prompt_key(text);
DROP TYPE IF EXISTS search_result;
