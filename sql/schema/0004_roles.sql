-- Least-privilege roles, applied by alembic/versions/0004_roles.py (undone by
-- 0004_roles.down.sql). Re-applying this file is harmless: every statement is idempotent.
--
--   pgallery_reader  NOLOGIN. Runs the search functions and reads painting metadata:
--                    painting, embedding_model (the model catalogue), which paintings have
--                    an embedding under which model (painting_embedding without its vector
--                    column), and alembic_version (the CLI checks the schema version before
--                    every command). Nothing else: no vectors, no prompt cache, no failure
--                    log, no writes, no DDL, no temporary tables.
--   pgallery_writer  NOLOGIN, member of pgallery_reader. Loads: registers models, stages
--                    (temporary tables) and merges batches, records failures, caches prompt
--                    vectors, refreshes statistics and rebuilds the IVFFlat index. No
--                    TRUNCATE, no DDL, and no DELETE except on the failure log.
--
-- Log in as a member: CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE pgallery_reader;
-- Roles are cluster-wide, so they may already exist from another database: they are created
-- only when missing, and the grants below are per database.
--
-- SECURITY DEFINER review. The reader may not see vectors, but similarity search has to
-- read them, so exactly the functions that read painting_embedding.embedding or
-- prompt_embedding themselves run as their owner:
--   nearest_paintings    the engine: returns search rows (ids, metadata, distances), never
--                        a stored vector
--   search_by_image      reads the query painting's vector, passes it to the engine
--   search_hybrid        reads distances for the fused rows
--   prompt_vector        the cached vector of a prompt (text-prompt vectors, not paintings';
--                        the CLI asks it whether a prompt is cached)
--   build_ivfflat_index  (procedure) the loader rebuilds IVFFlat after a load; creating an
--                        index needs the table's owner. Its one EXECUTE formats an integer.
-- Each was checked for: search_path pinned (SET search_path FROM CURRENT = pgallery's schema,
-- pgvector's, then pg_temp last so no temporary object shadows ours), no dynamic SQL built
-- from arguments (arguments are only ever bound values), no writes (except the index build),
-- and EXECUTE revoked from PUBLIC and granted to the two roles only.
-- search_by_vector and search_by_text need no definer rights: they read embedding_model
-- (which the reader may) and reach vectors only through the functions above.
-- Untrusted roles must not create objects in the schema these functions resolve names in
-- (CVE-2018-1058): CREATE on it is revoked from PUBLIC below (PostgreSQL 15+'s default).
--
-- NOTE for later migrations: CREATE OR REPLACE FUNCTION resets SECURITY DEFINER to INVOKER
-- (grants survive). A migration that re-creates any function named above must re-apply this
-- file afterwards, or the reader's searches fail with "permission denied" (tests/test_roles.py
-- catches that).

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['pgallery_reader', 'pgallery_writer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database's migration created it at the same moment
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'cannot create role %: the migrating role lacks CREATEROLE',
                                    role_name
                        USING HINT = 'have an administrator run CREATE ROLE pgallery_reader '
                                     'NOLOGIN; CREATE ROLE pgallery_writer NOLOGIN; then '
                                     'migrate again';
            END;
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role('pgallery_writer', 'pgallery_reader', 'MEMBER') THEN
        GRANT pgallery_reader TO pgallery_writer;
    END IF;
END
$$;

-- Database and schema: both may connect and use the schema; only the writer may create
-- temporary tables (create_painting_staging, merge_staged_paintings); nobody but the owner
-- may create objects in the schema.
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgallery_reader, pgallery_writer',
                   current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pgallery_writer', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'not the owner of database %: grant CONNECT to pgallery_reader and '
                  'CONNECT, TEMPORARY to pgallery_writer, and revoke TEMPORARY from PUBLIC, '
                  'as its owner', current_database();
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgallery_reader, pgallery_writer',
                   current_schema());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'cannot change privileges on schema %: grant USAGE to pgallery_reader '
                  'and pgallery_writer, and revoke CREATE from PUBLIC, as its owner',
                  current_schema();
END
$$;

-- Tables.
GRANT SELECT ON painting, embedding_model, alembic_version TO pgallery_reader;
GRANT SELECT (painting_id, model, content_hash, embedded_at) ON painting_embedding
    TO pgallery_reader;

GRANT SELECT, INSERT, UPDATE ON painting, painting_embedding, embedding_model,
                                prompt_embedding, embedding_failure TO pgallery_writer;
GRANT DELETE ON embedding_failure TO pgallery_writer;

-- ANALYZE after a load needs MAINTAIN (PostgreSQL 17+); older servers skip the ANALYZE
-- with a warning, which is harmless.
DO $$
BEGIN
    EXECUTE 'GRANT MAINTAIN ON painting, painting_embedding TO pgallery_writer';
EXCEPTION WHEN syntax_error OR feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'this server has no MAINTAIN privilege: the writer cannot ANALYZE';
END
$$;

-- Functions run with their owner's rights only where reviewed above.
ALTER FUNCTION nearest_paintings SECURITY DEFINER;
ALTER FUNCTION search_by_image SECURITY DEFINER;
ALTER FUNCTION search_hybrid SECURITY DEFINER;
ALTER FUNCTION prompt_vector SECURITY DEFINER;
ALTER PROCEDURE build_ivfflat_index SECURITY DEFINER;

-- Entry points are not for PUBLIC: the reader searches, the writer loads, the owner
-- administers (drop_ivfflat_index). The pure helpers (like_pattern, parse_year_range,
-- prompt_key, painting_matches, check_search_args, to_column_vector, resolve_model, the
-- *_setting functions) keep PUBLIC's EXECUTE: generated columns call parse_year_range and
-- prompt_key on every insert, and none of them reads a table the caller could not.
REVOKE EXECUTE ON FUNCTION search_by_vector, search_by_image, search_by_text, search_hybrid,
                           nearest_paintings, prompt_vector,
                           create_painting_staging, merge_staged_paintings, register_model,
                           use_model, store_prompt_embedding
    FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE build_ivfflat_index, drop_ivfflat_index FROM PUBLIC;

GRANT EXECUTE ON FUNCTION search_by_vector, search_by_image, search_by_text, search_hybrid,
                          nearest_paintings, prompt_vector
    TO pgallery_reader;
GRANT EXECUTE ON FUNCTION create_painting_staging, merge_staged_paintings, register_model,
                          use_model, store_prompt_embedding
    TO pgallery_writer;
GRANT EXECUTE ON PROCEDURE build_ivfflat_index TO pgallery_writer;
