-- Migration 0009, both directions: an IVFFlat index built by build_ivfflat_index() is
-- rebuilt, with the lists it had, by the build_ivfflat_index() now defined (the new shape on
-- upgrade, the old one on downgrade).

DO $$
DECLARE
    old_lists integer;
BEGIN
    SELECT o.option_value::integer INTO old_lists
    FROM pg_class c, pg_options_to_table(c.reloptions) AS o
    WHERE c.oid = to_regclass('painting_embedding_ivfflat') AND o.option_name = 'lists';
    IF FOUND THEN
        CALL build_ivfflat_index(old_lists);
    END IF;
END
$$;
