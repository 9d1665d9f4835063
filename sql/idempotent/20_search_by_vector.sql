-- search_by_vector: the paintings nearest to a vector, best first.
--
--   SELECT title, author, similarity
--   FROM search_by_vector('[0.01, -0.2, ...]'::vector, k => 5, school => 'dutch');
--
-- query_embedding  1024 dimensions, or the model's own dimension (zero-padded here)
-- k                rows wanted (1..10000)
-- author, technique, school   case-insensitive substring filters
-- painting_type, timeframe    case-insensitive exact filters
-- year_from, year_to          the painting's parsed year range overlaps [from, to]
-- model            whose vectors to search; NULL = the active model
-- ef_search        HNSW candidate list size; NULL = the session's hnsw.ef_search
--                  (the database default follows the collection: 70_search_defaults.sql)
-- probes           IVFFlat lists to visit; NULL = the session's ivfflat.probes
-- exact            true = no ANN index, exact brute force; NULL = the session's
--                  pgallery.exact_search, else false
-- Every filter is NULL by default, meaning "no filter".
CREATE OR REPLACE FUNCTION search_by_vector(
    query_embedding vector,
    {{search_parameters}}
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'vector'  -- which guard threshold applies (nearest_paintings)
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
    m embedding_model := resolve_model(r.model);
BEGIN
    IF query_embedding IS NULL THEN
        RAISE EXCEPTION 'query_embedding is NULL' USING ERRCODE = 'PGA06';
    END IF;
    RETURN QUERY SELECT * FROM nearest_paintings(to_column_vector(query_embedding, m), r, NULL);
END
$$;
