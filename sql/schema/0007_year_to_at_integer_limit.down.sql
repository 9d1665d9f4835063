-- Downgrade of migration 0007: painting_matches as migration 0003 created it (year_to =
-- 2147483647 overflowed int4range's inclusive upper bound).

-- Does painting p pass the metadata filters? NULL means "no filter". Written as a plain
-- SQL expression with no SET clause so that the planner inlines it into the caller's query
-- and can answer each condition from the painting_* indexes.
--   author, technique, school: case-insensitive substring ('gogh' matches 'GOGH, Vincent van')
--   painting_type, timeframe:  case-insensitive exact
--   year_from, year_to:        the painting's parsed year range overlaps [year_from, year_to]
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
        OR p.years && int4range(painting_matches.year_from, painting_matches.year_to, '[]'));
