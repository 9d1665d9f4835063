-- search_by_image: more like this painting, using its stored embedding. The painting
-- itself is left out of the result.
--
--   SELECT title, author, similarity FROM search_by_image('19873-1portrai.jpg', k => 5);
--   SELECT * FROM search_by_image('19873-1portrai.jpg', painting_type => 'landscape');
--
-- image_file is the painting's key (SemArt's IMAGE_FILE); an unknown one raises PGA03.
-- The other parameters are search_by_vector's.
CREATE OR REPLACE FUNCTION search_by_image(
    image_file text,
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
    query_painting bigint;
    q vector;
BEGIN
    PERFORM check_search_args(k, year_from, year_to);
    SELECT p.painting_id INTO query_painting
    FROM painting p WHERE p.image_file = search_by_image.image_file;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no painting with image_file %', quote_nullable(image_file)
            USING ERRCODE = 'PGA03',
                  HINT = 'image_file is the file name as loaded, e.g. ''19873-1portrai.jpg''';
    END IF;
    SELECT e.embedding INTO q
    FROM painting_embedding e WHERE e.painting_id = query_painting AND e.model = m.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'painting % has no embedding for model %',
                        quote_literal(image_file), quote_literal(m.name)
            USING ERRCODE = 'PGA03',
                  HINT = 'pgallery load embeds what is missing for the active model';
    END IF;
    RETURN QUERY SELECT * FROM nearest_paintings(
        q, m.name, k,
        author, technique, school, painting_type, timeframe, year_from, year_to,
        query_painting, ef_search_setting(ef_search), probes_setting(probes),
        exact_setting(exact));
END
$$;
