-- Embedding models: register one, switch the active one.
--
--   SELECT register_model('azure-vision/2023-04-15', 1024, 'azure');
--   SELECT use_model('azure-vision/2023-04-15');         -- one statement, atomic
--   SELECT name, dimension, is_active FROM embedding_model;

-- Register a model (idempotent). The first model registered becomes the active one.
-- A model's dimension never changes: vectors of two dimensions are never comparable.
CREATE OR REPLACE FUNCTION register_model(name text, dimension integer,
                                          provider text DEFAULT NULL)
RETURNS embedding_model
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    chosen embedding_model;
    -- read first, not as a subquery of the INSERT: Citus refuses subqueries in an INSERT
    -- into a reference table (the unique index on is_active still settles a race)
    first_model boolean := NOT EXISTS (SELECT 1 FROM embedding_model a WHERE a.is_active);
BEGIN
    INSERT INTO embedding_model AS em (name, dimension, provider, is_active)
    VALUES (register_model.name, register_model.dimension, register_model.provider,
            first_model)
    ON CONFLICT ON CONSTRAINT embedding_model_pkey DO NOTHING;
    SELECT * INTO chosen FROM embedding_model em WHERE em.name = register_model.name;
    IF chosen.dimension <> register_model.dimension THEN
        RAISE EXCEPTION 'model % is registered with % dimensions, not %',
                        quote_literal(chosen.name), chosen.dimension, register_model.dimension
            USING ERRCODE = 'PGA01';
    END IF;
    RETURN chosen;
EXCEPTION WHEN unique_violation THEN
    -- two first registrations at once both tried to become active: one wins, retry as
    -- inactive
    INSERT INTO embedding_model (name, dimension, provider, is_active)
    VALUES (register_model.name, register_model.dimension, register_model.provider, false)
    ON CONFLICT ON CONSTRAINT embedding_model_pkey DO NOTHING;
    SELECT * INTO chosen FROM embedding_model em WHERE em.name = register_model.name;
    RETURN chosen;
END
$$;

-- Make `name` the active model: searches without an explicit model use its vectors.
-- The switch is one transaction, so every other session sees either the old or the new
-- model, never none. It takes two UPDATEs, old off then new on: a single UPDATE flipping
-- both rows trips the one-active unique index whenever it reaches the new row first
-- (unique indexes are checked row by row, not at the end of the statement).
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
    -- concurrent switches queue here; each of the UPDATEs below then sees the winner's rows
    PERFORM 1 FROM embedding_model FOR UPDATE;
    UPDATE embedding_model em SET is_active = false
    WHERE em.is_active AND em.name <> use_model.name;
    UPDATE embedding_model em SET is_active = true
    WHERE em.name = use_model.name AND NOT em.is_active;
    chosen.is_active := true;
    RETURN chosen;
END
$$;
