-- Building blocks shared by the search_* functions. Not meant to be called directly, but
-- harmless if they are.
--
-- pgallery's own errors use SQLSTATEs of class PG (cli/pgallery/errors.py maps them):
--   PGA01 mismatched dimension     PGA02 invalid vector (zero, NaN, inf)
--   PGA03 painting not found       PGA04 unknown or no active model
--   PGA05 prompt not embedded      PGA06 invalid argument (k)
--   PGA07 invalid filter

-- '%value%' for ILIKE, with LIKE's own wildcards in the value taken literally: a filter
-- 'van_gogh' must not match 'vanXgogh', and '%' must not match everything.
CREATE OR REPLACE FUNCTION like_pattern(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
SET search_path FROM CURRENT
RETURN '%' || replace(replace(replace(value, '\', '\\'), '%', '\%'), '_', '\_') || '%';

-- Does painting p pass the metadata filters? NULL means "no filter". Written as a plain
-- SQL expression with no SET clause so that the planner inlines it into the caller's query
-- and can answer each condition from the painting_* indexes.
--   author, technique, school: case-insensitive substring ('gogh' matches 'GOGH, Vincent van')
--   painting_type, timeframe:  case-insensitive exact
--   year_from, year_to:        the painting's parsed year range overlaps [year_from, year_to]
-- The range is built half-open, [year_from, year_to + 1), as int4range stores it anyway;
-- int4range(year_from, year_to, '[]') would overflow computing that bound for year_to =
-- 2147483647, the largest integer, which is as good as no upper bound.
CREATE OR REPLACE FUNCTION painting_matches(
    p painting,
    author text, technique text, school text, painting_type text, timeframe text,
    year_from integer, year_to integer
) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (painting_matches.author IS NULL OR p.author ILIKE like_pattern(painting_matches.author))
   AND (painting_matches.technique IS NULL OR p.technique ILIKE like_pattern(painting_matches.technique))
   AND (painting_matches.school IS NULL OR p.school ILIKE like_pattern(painting_matches.school))
   AND (painting_matches.painting_type IS NULL
        OR lower(p.painting_type) = lower(painting_matches.painting_type))
   AND (painting_matches.timeframe IS NULL
        OR lower(p.timeframe) = lower(painting_matches.timeframe))
   AND (painting_matches.year_from IS NULL AND painting_matches.year_to IS NULL
        OR p.years && int4range(painting_matches.year_from,
                                CASE WHEN painting_matches.year_to < 2147483647
                                     THEN painting_matches.year_to + 1 END, '[)'));

-- The model to search: the one named, or the active one. Raises PGA04 otherwise.
CREATE OR REPLACE FUNCTION resolve_model(model text) RETURNS embedding_model
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    chosen embedding_model;
BEGIN
    IF model IS NULL THEN
        SELECT * INTO chosen FROM embedding_model m WHERE m.is_active;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no active embedding model'
                USING ERRCODE = 'PGA04',
                      HINT = 'load paintings first (pgallery load), or SELECT use_model(''name'')';
        END IF;
    ELSE
        SELECT * INTO chosen FROM embedding_model m WHERE m.name = resolve_model.model;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown embedding model %', quote_literal(model)
                USING ERRCODE = 'PGA04',
                      HINT = 'SELECT name FROM embedding_model lists the known models';
        END IF;
    END IF;
    RETURN chosen;
END
$$;

-- Validate the arguments every search takes.
CREATE OR REPLACE FUNCTION check_search_args(k integer, year_from integer, year_to integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF k IS NULL OR k < 1 OR k > 10000 THEN
        RAISE EXCEPTION 'k must be between 1 and 10000, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    IF year_from > year_to THEN
        RAISE EXCEPTION 'year_from (%) is after year_to (%)', year_from, year_to
            USING ERRCODE = 'PGA07';
    END IF;
END
$$;

-- A query vector as the column stores it: the model's own dimension zero-padded to 1024
-- (exact for cosine distance), refusing wrong dimensions and all-zero vectors. pgvector
-- itself already refuses NaN and infinity on input.
CREATE OR REPLACE FUNCTION to_column_vector(query_embedding vector, model embedding_model)
RETURNS vector
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    dims integer := vector_dims(query_embedding);
BEGIN
    IF dims <> 1024 AND dims <> model.dimension THEN
        RAISE EXCEPTION 'query vector has % dimensions; model % has %',
                        dims, quote_literal(model.name), model.dimension
            USING ERRCODE = 'PGA01';
    END IF;
    IF vector_norm(query_embedding) = 0 THEN
        RAISE EXCEPTION 'query vector is all zeros: it has no direction to compare'
            USING ERRCODE = 'PGA02';
    END IF;
    IF dims < 1024 THEN
        RETURN (query_embedding::real[] || array_fill(0::real, ARRAY[1024 - dims]))::vector;
    END IF;
    RETURN query_embedding;
END
$$;
