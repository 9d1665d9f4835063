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
    k integer DEFAULT 10,
    author text DEFAULT NULL,
    technique text DEFAULT NULL,
    school text DEFAULT NULL,
    painting_type text DEFAULT NULL,
    timeframe text DEFAULT NULL,
    year_from integer DEFAULT NULL,
    year_to integer DEFAULT NULL,
    model text DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    probes integer DEFAULT NULL,
    exact boolean DEFAULT NULL
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    m embedding_model := resolve_model(model);
    q vector := prompt_vector(prompt, m.name);
BEGIN
    PERFORM check_search_args(k, year_from, year_to);
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
    RETURN QUERY SELECT * FROM nearest_paintings(
        q, m.name, k,
        author, technique, school, painting_type, timeframe, year_from, year_to,
        NULL, ef_search_setting(ef_search), probes_setting(probes), exact_setting(exact));
END
$$;
