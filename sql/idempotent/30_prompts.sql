-- The text-prompt embedding cache (table prompt_embedding).
--
--   SELECT prompt_vector('a stormy sea', 'azure-vision/2023-04-15');   -- NULL if not cached
--   SELECT store_prompt_embedding('a stormy sea', '[...]'::vector, 'azure-vision/2023-04-15');

-- The cached vector of a prompt under a model, or NULL. The body is a string, not a
-- RETURN: Citus (14.0 on PostgreSQL 18) fails with a syntax error on a SQL-standard body
-- that reads one of its tables.
CREATE OR REPLACE FUNCTION prompt_vector(prompt text, model text) RETURNS vector
LANGUAGE sql STABLE
SET search_path FROM CURRENT
SECURITY DEFINER  -- the prompt cache is not the reader's to read (99_privileges.sql)
AS $$
    SELECT pe.embedding FROM prompt_embedding pe
    WHERE pe.model = prompt_vector.model
      AND pe.prompt_hash = prompt_key(prompt_vector.prompt)
$$;

-- Cache a prompt's vector (replacing an older one); model NULL = the active model.
-- The vector may have the model's own dimension: it is zero-padded like image vectors.
CREATE OR REPLACE FUNCTION store_prompt_embedding(prompt text, embedding vector,
                                                  model text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    m embedding_model := resolve_model(model);
BEGIN
    IF prompt IS NULL OR btrim(prompt) = '' THEN
        RAISE EXCEPTION 'the prompt is empty' USING ERRCODE = 'PGA06';
    END IF;
    INSERT INTO prompt_embedding AS pe (model, prompt, embedding)
    VALUES (m.name, prompt, to_column_vector(embedding, m))
    -- excluded.created_at is the column's default, now(): Citus refuses a volatile
    -- function in DO UPDATE SET on a reference table
    ON CONFLICT ON CONSTRAINT prompt_embedding_pkey DO UPDATE
        SET embedding = excluded.embedding, created_at = excluded.created_at;
END
$$;
