-- Downgrade of migration 0005: use_model as migration 0003 created it (one UPDATE that
-- flips both rows; it can trip the one-active unique index, which is why 0005 replaced it).

-- Make `name` the active model: searches without an explicit model use its vectors.
-- One UPDATE, so every session sees either the old or the new model, never none.
CREATE OR REPLACE FUNCTION use_model(name text) RETURNS embedding_model
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    chosen embedding_model := resolve_model(name);
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'use_model needs a model name' USING ERRCODE = 'PGA04';
    END IF;
    UPDATE embedding_model em SET is_active = (em.name = use_model.name)
    WHERE em.is_active OR em.name = use_model.name;
    chosen.is_active := true;
    RETURN chosen;
END
$$;
