-- Functions for `pgallery serve` (cli/pgallery/web/): the collection's filter values and
-- which filters match nothing. NOT YET APPLIED BY ANY MIGRATION, and kept out of
-- sql/functions/ on purpose: migration 0003 applies every file there (function_files()),
-- and its downgrade would not drop these. Once a migration applies this file, the web app runs the same queries as plain SELECTs (web/service.py,
-- SearchService.choices / suggest / why_empty), which pgallery_reader may run (SELECT on
-- painting; painting_matches and like_pattern keep PUBLIC's EXECUTE).
--
--   SELECT * FROM painting_filter_values('author', 'gogh');        -- suggestions
--   SELECT * FROM painting_filter_values('painting_type');         -- every type
--   SELECT * FROM filter_match_counts(school => 'atlantis', painting_type => 'landscape');
--
-- Privileges (for the migration that applies this file): both are SECURITY INVOKER (they
-- read only painting, which the reader may read); REVOKE EXECUTE ... FROM PUBLIC and
-- GRANT EXECUTE ... TO pgallery_reader (the writer inherits it), like the search functions.

-- Distinct values of one metadata column, optionally only those containing `contains`
-- (case-insensitive; % and _ are plain characters), values that start with it first, then
-- alphabetical; at most `max_values`. painting_type and timeframe come lower-cased, as the
-- filters compare them. `field` must be one of the five names below (PGA06 otherwise).
CREATE OR REPLACE FUNCTION painting_filter_values(field text, contains text DEFAULT NULL,
                                                  max_values integer DEFAULT 15)
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF field NOT IN ('author', 'technique', 'school', 'painting_type', 'timeframe') THEN
        RAISE EXCEPTION 'no filter values for %', quote_nullable(left(field, 100))
            USING ERRCODE = 'PGA06',
                  HINT = 'one of author, technique, school, painting_type, timeframe';
    END IF;
    IF max_values IS NULL OR max_values < 1 OR max_values > 1000 THEN
        RAISE EXCEPTION 'max_values must be between 1 and 1000' USING ERRCODE = 'PGA06';
    END IF;
    RETURN QUERY
    SELECT v.value
    FROM (SELECT DISTINCT CASE WHEN field IN ('painting_type', 'timeframe')
                               THEN lower(x.value) ELSE x.value END AS value
          FROM painting p,
               LATERAL (SELECT CASE field WHEN 'author' THEN p.author
                                          WHEN 'technique' THEN p.technique
                                          WHEN 'school' THEN p.school
                                          WHEN 'painting_type' THEN p.painting_type
                                          ELSE p.timeframe END AS value) AS x
          WHERE nullif(btrim(x.value), '') IS NOT NULL
            AND (contains IS NULL OR x.value ILIKE like_pattern(contains))) AS v
    ORDER BY (contains IS NOT NULL AND v.value ILIKE substr(like_pattern(contains), 2)) DESC,
             v.value
    LIMIT max_values;
END
$$;

-- How many paintings each given filter matches on its own (NULL for a filter not given),
-- and how many match all of them: what the web page says when a search finds nothing.
-- The year range counts as one filter. Filters have the search functions' meaning
-- (painting_matches).
CREATE OR REPLACE FUNCTION filter_match_counts(
    author text DEFAULT NULL, technique text DEFAULT NULL, school text DEFAULT NULL,
    painting_type text DEFAULT NULL, timeframe text DEFAULT NULL,
    year_from integer DEFAULT NULL, year_to integer DEFAULT NULL,
    OUT author_count bigint, OUT technique_count bigint, OUT school_count bigint,
    OUT painting_type_count bigint, OUT timeframe_count bigint, OUT years_count bigint,
    OUT all_count bigint)
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT
        CASE WHEN $1 IS NOT NULL THEN count(*) FILTER (WHERE painting_matches(
            p, $1, NULL, NULL, NULL, NULL, NULL, NULL)) END,
        CASE WHEN $2 IS NOT NULL THEN count(*) FILTER (WHERE painting_matches(
            p, NULL, $2, NULL, NULL, NULL, NULL, NULL)) END,
        CASE WHEN $3 IS NOT NULL THEN count(*) FILTER (WHERE painting_matches(
            p, NULL, NULL, $3, NULL, NULL, NULL, NULL)) END,
        CASE WHEN $4 IS NOT NULL THEN count(*) FILTER (WHERE painting_matches(
            p, NULL, NULL, NULL, $4, NULL, NULL, NULL)) END,
        CASE WHEN $5 IS NOT NULL THEN count(*) FILTER (WHERE painting_matches(
            p, NULL, NULL, NULL, NULL, $5, NULL, NULL)) END,
        CASE WHEN $6 IS NOT NULL OR $7 IS NOT NULL THEN count(*) FILTER (WHERE
            painting_matches(p, NULL, NULL, NULL, NULL, NULL, $6, $7)) END,
        count(*) FILTER (WHERE painting_matches(p, $1, $2, $3, $4, $5, $6, $7))
    FROM painting p
$$;
