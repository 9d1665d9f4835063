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
    {{search_parameters}}
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'stored'  -- which guard threshold applies (nearest_paintings)
SECURITY DEFINER  -- reads the query painting's vector (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
    m embedding_model := resolve_model(r.model);
    query_painting bigint;
    q vector;
BEGIN
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
    RETURN QUERY SELECT * FROM nearest_paintings(q, r, query_painting);
END
$$;
