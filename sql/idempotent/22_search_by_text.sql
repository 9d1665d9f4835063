-- search_by_text: text-to-image search with a prompt's cached embedding.
--
--   SELECT title, author, similarity FROM search_by_text('a stormy sea at night', k => 5);
--
-- SQL cannot call the embedding API, so the prompt must have been embedded for the model
-- first: `pgallery search text "a stormy sea at night"` embeds it and stores it in
-- prompt_embedding; from then on this function answers it from psql. An unknown prompt
-- raises PGA05 naming that command (or, for a model that embeds images only, how to add
-- one that reads text). The other parameters are search_by_vector's.
CREATE OR REPLACE FUNCTION search_by_text(
    prompt text,
    {{search_parameters}}
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'text'  -- which guard threshold applies (nearest_paintings)
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
    m embedding_model := resolve_model(r.model);
    q vector := prompt_vector(prompt, m.name);
BEGIN
    IF q IS NULL THEN
        RAISE EXCEPTION 'the prompt % has not been embedded for model %',
                        quote_nullable(left(prompt, 200)), quote_literal(m.name)
            USING ERRCODE = 'PGA05',
                  HINT = CASE WHEN m.provider = 'local' THEN
                      format('model %s embeds images only, so no prompt can be embedded '
                             'for it; for text search add a text model with: pgallery '
                             'reembed --provider clip (or azure), then pgallery models use '
                             'it', m.name)
                      ELSE 'embed it once with: pgallery search text "<prompt>"' END;
    END IF;
    RETURN QUERY SELECT * FROM nearest_paintings(q, r, NULL);
END
$$;
