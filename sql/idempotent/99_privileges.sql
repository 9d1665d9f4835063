-- The privileges step, last in the layer: who may EXECUTE each routine of the layer, read
-- from the catalog rather than listed by name, so a new function cannot ship without them
-- and every signature of a name is covered (pg_get_function_identity_arguments).
--
-- The rule, from each routine's own properties:
--   STABLE or IMMUTABLE functions  pgallery_reader (and so pgallery_writer, its member).
--                                  PostgreSQL refuses writes in them, so a reader can run
--                                  every one and change nothing.
--   VOLATILE functions             pgallery_writer: they write (loads, the prompt cache,
--                                  models, settings).
--   procedures                     they do DDL (indexes), which only the owner may:
--                                  pgallery_writer for those that run as their owner
--                                  (SECURITY DEFINER), nobody else for the rest.
--   PUBLIC                         nothing: every routine of the layer is revoked from it.
-- SECURITY DEFINER is declared in each definition (CREATE OR REPLACE keeps it that way).
-- Those routines read what the reader may not (vectors, the prompt cache) or need the
-- owner for DDL; this step refuses to finish unless each one pins search_path with
-- pg_temp last, so no temporary object can shadow what it calls (CVE-2018-1058).
--
-- The layer's routine names come from the installer (cli/pgallery/migrations.py sets
-- pgallery.layer_routines to the names the layer's files create); routines outside the
-- layer (parse_year_range and prompt_key, which generated columns use, and anything else
-- in the schema) are left as they are.
DO $$
DECLARE
    routine record;
    audience text;
BEGIN
    FOR routine IN
        SELECT p.oid, p.proname, p.prokind, p.provolatile, p.prosecdef, p.proconfig,
               CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END AS kind,
               pg_catalog.pg_get_function_identity_arguments(p.oid) AS arguments
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname = ANY (string_to_array(
                  current_setting('pgallery.layer_routines', true), ','))
        ORDER BY p.proname, arguments
    LOOP
        IF routine.prosecdef AND NOT EXISTS (
               SELECT FROM unnest(routine.proconfig) AS c
               WHERE c LIKE 'search_path=%' AND c LIKE '%pg\_temp') THEN
            RAISE EXCEPTION 'SECURITY DEFINER routine %(%) must SET search_path FROM CURRENT',
                            routine.proname, routine.arguments;
        END IF;
        audience := CASE WHEN routine.prokind = 'f' AND routine.provolatile IN ('s', 'i')
                              THEN 'pgallery_reader'
                         WHEN routine.prokind = 'f' OR routine.prosecdef
                              THEN 'pgallery_writer' END;
        -- names and argument types come from the catalog, quoted by format's %I / as
        -- pg_get_function_identity_arguments prints them
        EXECUTE format('REVOKE ALL ON %s %I(%s) FROM PUBLIC',
                       routine.kind, routine.proname, routine.arguments);
        IF audience IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON %s %I(%s) TO %I',
                           routine.kind, routine.proname, routine.arguments, audience);
        END IF;
    END LOOP;
END
$$;
