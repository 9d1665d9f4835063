-- Undo 0004_roles.sql in this database: functions back to SECURITY INVOKER with PUBLIC's
-- EXECUTE, PUBLIC's TEMPORARY back, every grant to the two roles revoked. The roles are
-- cluster-wide: they are dropped only when nothing anywhere still depends on them (no other
-- database grants them anything, they own nothing); otherwise they stay, with a NOTICE.
-- CREATE on the schema stays revoked from PUBLIC (PostgreSQL 15+'s default anyway).

ALTER FUNCTION nearest_paintings SECURITY INVOKER;
ALTER FUNCTION search_by_image SECURITY INVOKER;
ALTER FUNCTION search_hybrid SECURITY INVOKER;
ALTER FUNCTION prompt_vector SECURITY INVOKER;
ALTER PROCEDURE build_ivfflat_index SECURITY INVOKER;

GRANT EXECUTE ON FUNCTION search_by_vector, search_by_image, search_by_text, search_hybrid,
                          nearest_paintings, prompt_vector,
                          create_painting_staging, merge_staged_paintings, register_model,
                          use_model, store_prompt_embedding
    TO PUBLIC;
GRANT EXECUTE ON PROCEDURE build_ivfflat_index, drop_ivfflat_index TO PUBLIC;

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
