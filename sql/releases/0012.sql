-- The replaceable layer exactly as revision 0012 shipped it: sql/idempotent/ at 0012,
-- placeholders filled. Frozen by `python -m pgallery.migrations freeze`; never edit it.

-- ==== functions/00_helpers.sql (as of 0012)

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

-- ==== functions/01_settings.sql (as of 0012)

-- The recall settings a search runs with: the call's argument if given, else the session's
-- setting (SET hnsw.ef_search / ivfflat.probes / pgallery.exact_search), else the default.
-- They are read by the search_* functions before nearest_paintings() applies them, because
-- nearest_paintings' own SET clauses hide the caller's values.

CREATE OR REPLACE FUNCTION ef_search_setting(ef_search integer) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF ef_search IS NOT NULL AND (ef_search < 1 OR ef_search > 1000) THEN
        RAISE EXCEPTION 'ef_search must be between 1 and 1000, got %', ef_search
            USING ERRCODE = 'PGA06';
    END IF;
    RETURN coalesce(ef_search,
                    nullif(current_setting('hnsw.ef_search', true), '')::integer, 40);
END
$$;

CREATE OR REPLACE FUNCTION probes_setting(probes integer) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF probes IS NOT NULL AND (probes < 1 OR probes > 32768) THEN
        RAISE EXCEPTION 'probes must be between 1 and 32768, got %', probes
            USING ERRCODE = 'PGA06';
    END IF;
    RETURN coalesce(probes, nullif(current_setting('ivfflat.probes', true), '')::integer, 1);
END
$$;

CREATE OR REPLACE FUNCTION exact_setting(exact boolean) RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
RETURN coalesce(exact,
                nullif(current_setting('pgallery.exact_search', true), '')::boolean, false);

-- ==== functions/10_nearest_paintings.sql (as of 0012)

-- How many paintings pass the filters, as the planner estimates it from the statistics
-- ANALYZE keeps; NULL before painting's first ANALYZE (the estimate would be a guess) and
-- when a custom scan answers (Citus's distributed scan carries a placeholder row count).
-- EXPLAIN is only allowed in a VOLATILE function, hence a function of its own (it changes
-- nothing, so the STABLE nearest_paintings may call it). The statement text is fixed; the
-- filter values are bound parameters, as everywhere else.
CREATE OR REPLACE FUNCTION estimated_matches(
    author text, technique text, school text, painting_type text, timeframe text,
    year_from integer, year_to integer
) RETURNS float8
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    plan json;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_stats s
                   WHERE s.schemaname = (SELECT c.relnamespace::regnamespace::name
                                         FROM pg_class c WHERE c.oid = 'painting'::regclass)
                     AND s.tablename = 'painting') THEN
        RETURN NULL;
    END IF;
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM painting p'
            ' WHERE painting_matches(p, $1, $2, $3, $4, $5, $6, $7)'
       INTO plan
       USING author, technique, school, painting_type, timeframe, year_from, year_to;
    IF plan -> 0 -> 'Plan' ->> 'Node Type' = 'Custom Scan' THEN
        RETURN NULL;
    END IF;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END
$$;

-- The engine behind every search_* function: the k paintings nearest to a vector among
-- those that pass the metadata filters, under one model.
--
--   SELECT * FROM nearest_paintings('[...]'::vector, 'azure-vision/2023-04-15', 10,
--                                   NULL, NULL, NULL, 'portrait', NULL, NULL, NULL,
--                                   NULL, 100, 10, false);
--
-- Callers pass the recall settings they resolved (ef_search, probes, exact); this function
-- applies them with set_config() and its own SET clauses keep those changes from leaking
-- into the caller's transaction.
--
-- The ANN indexes hold each vector normalised and in half precision (migration 0009):
-- ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh is the shape they answer, where
-- qh is the query normalised the same way. Cosine distance does not change under
-- normalisation, half precision ranks as well as single (bench/README.md, section 5), and
-- the index is a third of the size. Normalising first keeps every value within halfvec's
-- range (+-65504). The distances returned are computed on the full vectors.
--
-- Strategy, per call:
--   1. no filters              -> the ANN index (HNSW, or IVFFlat if that is what exists)
--   2. filters matching few    -> exact: read the matching rows through the metadata
--      rows (< prefilter_limit)   indexes and sort them by distance (fast, and exact)
--   3. other filters           -> the ANN index with pgvector 0.8's iterative scan, which
--                                 keeps walking the graph until k rows pass the filters
--   4. if the ANN path returns fewer than k rows (the scan gave up after hnsw.max_scan_tuples),
--      fall back to exact, so a full page comes back whenever k paintings match.
-- prefilter_limit comes from the setting pgallery.prefilter_limit; unset, it is
-- 2000 * sqrt(rows / 100,000), at least 1000. Exact costs grow with the rows matching and
-- the iterative scan with 1 / selectivity, so the crossover grows with sqrt(rows); bench/
-- measured 2000 at 100k rows (bench/README.md, "Filtered search").
-- "How many match" is first the planner's estimate (EXPLAIN of the filter alone, from the
-- statistics ANALYZE keeps: well under a millisecond however many rows match). Only when the
-- estimate is within 2x of prefilter_limit, or the table has no statistics yet, are the
-- matches counted for real (bounded): counting half of a 1M-row table through a bitmap
-- index scan cost more than the search itself.
--
-- Plans are steered, not left to statistics (bench/README.md, "Plan steering"):
--   - the ANN statements run with enable_sort off, so the planner takes the vector index
--     even before the first ANALYZE (when it estimates a handful of rows and would sort);
--   - the filtered statements are planned per call (plan_cache_mode = force_custom_plan):
--     a generic plan cannot drop the "filter IS NULL OR ..." arms and so cannot use the
--     metadata indexes; the unfiltered ANN statement always uses one cached generic plan;
--   - the exact filtered statement joins by nested loop: the matching paintings are found
--     through their index and only their vectors are read, never the whole table.
CREATE OR REPLACE FUNCTION nearest_paintings(
    q vector,                 -- already a 1024-d column vector (see to_column_vector)
    model_name text,
    k integer,
    f_author text, f_technique text, f_school text, f_painting_type text, f_timeframe text,
    f_year_from integer, f_year_to integer,
    exclude_painting bigint,  -- search_by_image leaves the query painting out
    ef_search integer,
    probes integer,
    exact boolean
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- Placeholders: they make the set_config() calls below local to this function.
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET ivfflat.probes = 1
SET ivfflat.iterative_scan = relaxed_order
SET enable_sort = on
SET enable_hashjoin = on
SET enable_mergejoin = on
SET plan_cache_mode = auto
AS $$
DECLARE
    has_filters boolean := num_nonnulls(f_author, f_technique, f_school, f_painting_type,
                                        f_timeframe, f_year_from, f_year_to) > 0;
    prefilter_limit integer;
    matching float8;
    page search_result[];
    qh halfvec(1024) := l2_normalize(q)::halfvec(1024);  -- the indexes' shape (see above)
BEGIN
    -- pgvector accepts hnsw.ef_search up to 1000; beyond, the iterative scan supplies rows
    PERFORM set_config('hnsw.ef_search', least(greatest(ef_search, k), 1000)::text, true),
            set_config('ivfflat.probes', probes::text, true);

    IF NOT has_filters THEN
        IF NOT exact THEN
            -- ORDER BY ... <=> qh LIMIT k on the embeddings alone: the shape the
            -- HNSW/IVFFlat index answers; the k paintings are joined afterwards. The
            -- relaxed iterative scan may return rows slightly out of order, hence the sort
            -- when the page is assembled. The page is kept in a variable: if it comes back
            -- short, the exact path below replaces it.
            -- One cached generic plan (planning it per call costs more than the search:
            -- with LIMIT k unknown the planner would keep re-planning), pinned to the
            -- index scan and a nested-loop join of the k rows.
            PERFORM set_config('enable_sort', 'off', true),
                    set_config('enable_hashjoin', 'off', true),
                    set_config('enable_mergejoin', 'off', true),
                    set_config('plan_cache_mode', 'force_generic_plan', true);
            SELECT array_agg(ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
                                 p.painting_type, p.school, p.timeframe, p.date,
                                 h.distance, 1 - h.distance, 1 - h.distance)::search_result
                             ORDER BY h.distance, h.painting_id)
            INTO page
            FROM (SELECT e.painting_id, e.embedding <=> q AS distance
                  FROM painting_embedding e
                  WHERE e.model = model_name
                    AND e.painting_id IS DISTINCT FROM exclude_painting
                  ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh
                  LIMIT k) AS h
            JOIN painting p ON p.painting_id = h.painting_id;
            IF cardinality(page) = k THEN
                RETURN QUERY SELECT * FROM unnest(page);
                RETURN;
            END IF;
            PERFORM set_config('enable_sort', 'on', true),
                    set_config('enable_hashjoin', 'on', true),
                    set_config('enable_mergejoin', 'on', true),
                    set_config('plan_cache_mode', 'auto', true);
        END IF;
        -- Exact: every vector of the model, top k by a bounded sort; "+ 0" keeps the
        -- planner off the ANN index.
        RETURN QUERY
        SELECT p.painting_id, p.image_file, p.title, p.author, p.technique,
               p.painting_type, p.school, p.timeframe, p.date,
               h.distance, 1 - h.distance, 1 - h.distance
        FROM (SELECT e.painting_id, e.embedding <=> q AS distance
              FROM painting_embedding e
              WHERE e.model = model_name
                AND e.painting_id IS DISTINCT FROM exclude_painting
              ORDER BY (e.embedding <=> q) + 0, e.painting_id
              LIMIT k) AS h
        JOIN painting p ON p.painting_id = h.painting_id
        ORDER BY h.distance, h.painting_id;
        RETURN;
    END IF;

    -- Filtered: plan each statement for this call's filter values.
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    IF NOT exact THEN
        prefilter_limit := nullif(current_setting('pgallery.prefilter_limit', true), '')::integer;
        IF prefilter_limit IS NULL THEN
            -- (reltuples is -1 until the first ANALYZE: take the 100k figure)
            SELECT greatest(1000, round(2000 * sqrt(
                       CASE WHEN c.reltuples < 0 THEN 100000 ELSE c.reltuples END / 100000.0)))
            INTO prefilter_limit
            FROM pg_class c WHERE c.oid = 'painting_embedding'::regclass;
        END IF;
        matching := estimated_matches(f_author, f_technique, f_school, f_painting_type,
                                      f_timeframe, f_year_from, f_year_to);
        IF matching IS NULL OR matching BETWEEN prefilter_limit / 2.0 AND prefilter_limit * 2.0
        THEN
            -- A bounded count: stops reading at prefilter_limit matches.
            SELECT count(*) INTO matching FROM (
                SELECT 1 FROM painting p
                WHERE painting_matches(p, f_author, f_technique, f_school, f_painting_type,
                                       f_timeframe, f_year_from, f_year_to)
                LIMIT prefilter_limit
            ) AS bounded;
        END IF;
        exact := matching < prefilter_limit;
    END IF;

    IF NOT exact THEN
        -- Many rows match: the ANN index with the iterative scan, filters checked as the
        -- graph is walked.
        PERFORM set_config('enable_sort', 'off', true);
        SELECT array_agg(ROW(h.*, 1 - h.distance, 1 - h.distance)::search_result
                         ORDER BY h.distance, h.painting_id)
        INTO page
        FROM (SELECT p.painting_id, p.image_file, p.title, p.author, p.technique,
                     p.painting_type, p.school, p.timeframe, p.date,
                     e.embedding <=> q AS distance
              FROM painting_embedding e
              JOIN painting p ON p.painting_id = e.painting_id
              WHERE e.model = model_name
                AND p.painting_id IS DISTINCT FROM exclude_painting
                AND painting_matches(p, f_author, f_technique, f_school, f_painting_type,
                                     f_timeframe, f_year_from, f_year_to)
              ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh
              LIMIT k) AS h;
        IF cardinality(page) = k THEN
            RETURN QUERY SELECT * FROM unnest(page);
            RETURN;
        END IF;
        -- Fewer than k: either fewer paintings match, or the index scan stopped early
        -- (hnsw.max_scan_tuples). The exact path decides.
        PERFORM set_config('enable_sort', 'on', true);
    END IF;

    -- Exact over the matching paintings: found through the metadata indexes, each one's
    -- vector read by primary key (nested loop), top k by a bounded sort.
    PERFORM set_config('enable_hashjoin', 'off', true),
            set_config('enable_mergejoin', 'off', true);
    RETURN QUERY
    SELECT ranked.*, 1 - ranked.distance, 1 - ranked.distance FROM (
        SELECT p.painting_id, p.image_file, p.title, p.author, p.technique,
               p.painting_type, p.school, p.timeframe, p.date,
               e.embedding <=> q AS distance
        FROM painting p
        JOIN painting_embedding e ON e.painting_id = p.painting_id AND e.model = model_name
        WHERE p.painting_id IS DISTINCT FROM exclude_painting
          AND painting_matches(p, f_author, f_technique, f_school, f_painting_type,
                               f_timeframe, f_year_from, f_year_to)
        -- "+ 0" keeps the planner off the ANN index: this path must be exact.
        ORDER BY (e.embedding <=> q) + 0, p.painting_id
        LIMIT k
    ) AS ranked;
END
$$;

-- ==== functions/20_search_by_vector.sql (as of 0012)

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
BEGIN
    IF query_embedding IS NULL THEN
        RAISE EXCEPTION 'query_embedding is NULL' USING ERRCODE = 'PGA06';
    END IF;
    PERFORM check_search_args(k, year_from, year_to);
    RETURN QUERY SELECT * FROM nearest_paintings(
        to_column_vector(query_embedding, m), m.name, k,
        author, technique, school, painting_type, timeframe, year_from, year_to,
        NULL, ef_search_setting(ef_search), probes_setting(probes), exact_setting(exact));
END
$$;

-- ==== functions/21_search_by_image.sql (as of 0012)

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

-- ==== functions/22_search_by_text.sql (as of 0012)

-- search_by_text: text-to-image search with a prompt's cached embedding.
--
--   SELECT title, author, similarity FROM search_by_text('a stormy sea at night', k => 5);
--
-- SQL cannot call the embedding API, so the prompt must have been embedded for the model
-- first: `pgallery search text "a stormy sea at night"` embeds it and stores it in
-- prompt_embedding; from then on this function answers it from psql. An unknown prompt
-- raises PGA05 naming that command. The other parameters are search_by_vector's.
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
                  HINT = 'embed it once with: pgallery search text "<prompt>"';
    END IF;
    RETURN QUERY SELECT * FROM nearest_paintings(
        q, m.name, k,
        author, technique, school, painting_type, timeframe, year_from, year_to,
        NULL, ef_search_setting(ef_search), probes_setting(probes), exact_setting(exact));
END
$$;

-- ==== functions/23_search_hybrid.sql (as of 0012)

-- search_hybrid: semantic and keyword search fused by reciprocal rank fusion (RRF).
--
--   SELECT title, author, score FROM search_hybrid('sunflowers', k => 5);
--   SELECT * FROM search_hybrid('madonna child', school => 'italian', year_to => 1500);
--
-- Two rankings of the paintings that pass the filters:
--   semantic  the prompt's cached embedding (see search_by_text) against image embeddings
--   keyword   full-text match of the prompt's words (any of them) against title, author,
--             description, technique, type and school, ranked by ts_rank_cd
-- Each painting scores sum(1 / (rrf_k + rank)) over the rankings it appears in, the standard
-- RRF with rrf_k = 60; each ranking contributes its best `candidates` rows (default 4k,
-- at least 40). `score` holds the fused score; `distance`/`similarity` are the cosine
-- distance to the prompt when it is embedded.
-- If the prompt has no cached embedding (a provider without text, such as `local`), the
-- ranking is keyword-only and a NOTICE says so.
CREATE OR REPLACE FUNCTION search_hybrid(
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
    exact boolean DEFAULT NULL,
    rrf_k integer DEFAULT 60,
    candidates integer DEFAULT NULL
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    m embedding_model := resolve_model(model);
    q vector;
    n integer;
    words tsquery;
BEGIN
    PERFORM check_search_args(k, year_from, year_to);
    IF prompt IS NULL OR btrim(prompt) = '' THEN
        RAISE EXCEPTION 'the prompt is empty' USING ERRCODE = 'PGA06';
    END IF;
    IF rrf_k IS NULL OR rrf_k < 0 THEN
        RAISE EXCEPTION 'rrf_k must be 0 or more' USING ERRCODE = 'PGA06';
    END IF;
    n := greatest(coalesce(candidates, 4 * k), k, 40);
    q := prompt_vector(prompt, m.name);
    IF q IS NULL THEN
        RAISE NOTICE 'prompt not embedded for model %: keyword ranking only', m.name
            USING HINT = 'pgallery search text "<prompt>" embeds it (needs a text-capable provider)';
    END IF;
    -- Any of the prompt's words, stemmed (english) or as written (simple, for names).
    -- plainto_tsquery parses the text safely; its canonical output joins lexemes with
    -- ' & ', which we turn into ' | ' (lexemes are quoted and hold no spaces).
    words := replace(plainto_tsquery('english', prompt)::text, ' & ', ' | ')::tsquery
          || replace(plainto_tsquery('simple', prompt)::text, ' & ', ' | ')::tsquery;

    RETURN QUERY
    WITH semantic AS (
        SELECT s.painting_id, row_number() OVER (ORDER BY s.distance, s.painting_id) AS rank
        FROM nearest_paintings(q, m.name, n,
                 author, technique, school, painting_type, timeframe, year_from, year_to,
                 NULL, ef_search_setting(ef_search), probes_setting(probes),
                 exact_setting(exact)) AS s
        WHERE q IS NOT NULL
    ),
    keyword AS (
        SELECT ranked.painting_id,
               row_number() OVER (ORDER BY ranked.rank_cd DESC, ranked.painting_id) AS rank
        FROM (
            SELECT p.painting_id, ts_rank_cd(p.search_document, words) AS rank_cd
            FROM painting p
            WHERE p.search_document @@ words
              AND painting_matches(p, search_hybrid.author, search_hybrid.technique,
                                   search_hybrid.school, search_hybrid.painting_type,
                                   search_hybrid.timeframe, year_from, year_to)
              AND EXISTS (SELECT 1 FROM painting_embedding e
                          WHERE e.painting_id = p.painting_id AND e.model = m.name)
            ORDER BY rank_cd DESC, p.painting_id
            LIMIT n
        ) AS ranked
    ),
    fused AS (
        SELECT coalesce(s.painting_id, kw.painting_id) AS painting_id,
               coalesce(1.0 / (rrf_k + s.rank), 0) + coalesce(1.0 / (rrf_k + kw.rank), 0)
                   AS rrf_score
        FROM semantic s FULL JOIN keyword kw ON kw.painting_id = s.painting_id
        ORDER BY rrf_score DESC, painting_id
        LIMIT k
    )
    SELECT p.painting_id, p.image_file, p.title, p.author, p.technique, p.painting_type,
           p.school, p.timeframe, p.date,
           d.distance, 1 - d.distance, f.rrf_score::double precision
    FROM fused f
    JOIN painting p ON p.painting_id = f.painting_id
    LEFT JOIN LATERAL (
        SELECT e.embedding <=> q AS distance FROM painting_embedding e
        WHERE e.painting_id = f.painting_id AND e.model = m.name AND q IS NOT NULL
    ) AS d ON true
    ORDER BY f.rrf_score DESC, f.painting_id;
END
$$;

-- ==== functions/30_prompts.sql (as of 0012)

-- The text-prompt embedding cache (table prompt_embedding).
--
--   SELECT prompt_vector('a stormy sea', 'azure-vision/2023-04-15');   -- NULL if not cached
--   SELECT store_prompt_embedding('a stormy sea', '[...]'::vector, 'azure-vision/2023-04-15');

-- The cached vector of a prompt under a model, or NULL.
CREATE OR REPLACE FUNCTION prompt_vector(prompt text, model text) RETURNS vector
LANGUAGE sql STABLE
SET search_path FROM CURRENT
RETURN (SELECT pe.embedding FROM prompt_embedding pe
        WHERE pe.model = prompt_vector.model
          AND pe.prompt_hash = prompt_key(prompt_vector.prompt));

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
    ON CONFLICT ON CONSTRAINT prompt_embedding_pkey DO UPDATE
        SET embedding = excluded.embedding, created_at = now();
END
$$;

-- ==== functions/40_models.sql (as of 0012)

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
BEGIN
    INSERT INTO embedding_model AS em (name, dimension, provider, is_active)
    VALUES (register_model.name, register_model.dimension, register_model.provider,
            NOT EXISTS (SELECT 1 FROM embedding_model a WHERE a.is_active))
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

-- ==== functions/50_build_ivfflat_index.sql (as of 0012)

-- build_ivfflat_index: (re)build the IVFFlat index from the vectors loaded now.
--
--   CALL build_ivfflat_index();          -- lists from the row count
--   CALL build_ivfflat_index(200);       -- or as given
--
-- IVFFlat clusters the vectors it is built on, so it must be built after loading, and
-- rebuilt when the collection has grown a lot. lists = rows / 1000 up to 1M rows,
-- sqrt(rows) beyond (pgvector's guidance), at least 1. The new index is built under a
-- temporary name and swapped in, so searches keep using the old one while it builds
-- (CREATE INDEX blocks writes, not reads).
-- With both HNSW and IVFFlat present the planner uses the cheaper one; searches set
-- ivfflat.probes from their `probes` argument or the session.
CREATE OR REPLACE PROCEDURE build_ivfflat_index(lists integer DEFAULT NULL)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    n bigint;
BEGIN
    IF lists IS NULL THEN
        SELECT count(*) INTO n FROM painting_embedding;
        lists := greatest(1, CASE WHEN n <= 1000000 THEN n / 1000
                                  ELSE floor(sqrt(n))::bigint END)::integer;
    ELSIF lists < 1 OR lists > 32768 THEN
        RAISE EXCEPTION 'lists must be between 1 and 32768, got %', lists
            USING ERRCODE = 'PGA06';
    END IF;
    DROP INDEX IF EXISTS painting_embedding_ivfflat_new;
    -- lists is an integer: format's %s cannot inject anything here
    -- The same normalised half-precision shape as the HNSW index (migration 0009), which
    -- is what nearest_paintings orders by.
    EXECUTE format('CREATE INDEX painting_embedding_ivfflat_new ON painting_embedding '
                   'USING ivfflat ((l2_normalize(embedding)::halfvec(1024)) '
                   'halfvec_cosine_ops) WITH (lists = %s)', lists);
    DROP INDEX IF EXISTS painting_embedding_ivfflat;
    ALTER INDEX painting_embedding_ivfflat_new RENAME TO painting_embedding_ivfflat;
    RAISE NOTICE 'built painting_embedding_ivfflat with % lists', lists;
END
$$;

-- Drop it again (searches fall back to HNSW).
CREATE OR REPLACE PROCEDURE drop_ivfflat_index()
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DROP INDEX IF EXISTS painting_embedding_ivfflat;
END
$$;

-- ==== functions/60_merge_staged_paintings.sql (as of 0012)

-- Staged loading: a loader COPYs a batch into a temporary table, then one call merges it.
--
--   BEGIN;
--   SELECT create_painting_staging();
--   COPY painting_staging (ordinal, image_file, title, ..., embedding) FROM STDIN (FORMAT binary);
--   SELECT * FROM merge_staged_paintings('azure-vision/2023-04-15');
--   COMMIT;
--
-- One batch, one transaction: killing a load loses at most the batch in flight and never
-- leaves half-written rows. Idempotent on image_file: a re-run updates, never duplicates.

-- The session's staging table; emptied at every commit.
CREATE OR REPLACE FUNCTION create_painting_staging() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS painting_staging (
        ordinal       bigint NOT NULL,   -- position in the input: the last duplicate wins
        image_file    text NOT NULL,
        title         text,
        author        text,
        technique     text,
        date          text,
        painting_type text,
        school        text,
        timeframe     text,
        description   text,
        image_uri     text,
        content_hash  text,
        embedding     vector(1024)       -- NULL: metadata only
    ) ON COMMIT DELETE ROWS;
END
$$;

-- Merge the staged rows under `model` (which must be registered). Rows are taken in
-- image_file order so two loaders on overlapping inputs lock rows in the same order and
-- cannot deadlock. Each step is its own statement so that, under READ COMMITTED, the
-- embedding step sees paintings another loader committed meanwhile.
CREATE OR REPLACE FUNCTION merge_staged_paintings(model text)
RETURNS TABLE (paintings_inserted bigint, paintings_updated bigint, embeddings_written bigint)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    m embedding_model;
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'merge_staged_paintings needs a model' USING ERRCODE = 'PGA04';
    END IF;
    m := resolve_model(model);

    -- Last row wins when the input names the same image twice: the earlier ones are
    -- deleted in place. (Copying the staged rows, 4 kB vectors and all, into a
    -- deduplicated table took a sixth of a bulk load's merge in bench/load_bench.py.)
    DELETE FROM pg_temp.painting_staging s
    WHERE EXISTS (SELECT FROM pg_temp.painting_staging later
                  WHERE later.image_file = s.image_file AND later.ordinal > s.ordinal);

    WITH upserted AS (
        INSERT INTO painting AS p (image_file, title, author, technique, date, painting_type,
                                   school, timeframe, description, image_uri, content_hash)
        SELECT s.image_file, s.title, s.author, s.technique, s.date, s.painting_type,
               s.school, s.timeframe, s.description, s.image_uri, s.content_hash
        FROM pg_temp.painting_staging s
        ORDER BY s.image_file
        -- A NULL in the input means "this input does not say", not "erase": a file of
        -- another model's vectors without date or school columns must not wipe them.
        ON CONFLICT ON CONSTRAINT painting_image_file_key DO UPDATE SET
            title = coalesce(excluded.title, p.title),
            author = coalesce(excluded.author, p.author),
            technique = coalesce(excluded.technique, p.technique),
            date = coalesce(excluded.date, p.date),
            painting_type = coalesce(excluded.painting_type, p.painting_type),
            school = coalesce(excluded.school, p.school),
            timeframe = coalesce(excluded.timeframe, p.timeframe),
            description = coalesce(excluded.description, p.description),
            image_uri = coalesce(excluded.image_uri, p.image_uri),
            content_hash = coalesce(excluded.content_hash, p.content_hash),
            updated_at = now()
        -- leave unchanged rows alone: a re-run of the same file writes no dead tuples
        WHERE (p.title, p.author, p.technique, p.date, p.painting_type, p.school,
               p.timeframe, p.description, p.image_uri, p.content_hash)
              IS DISTINCT FROM
              (coalesce(excluded.title, p.title), coalesce(excluded.author, p.author),
               coalesce(excluded.technique, p.technique), coalesce(excluded.date, p.date),
               coalesce(excluded.painting_type, p.painting_type),
               coalesce(excluded.school, p.school), coalesce(excluded.timeframe, p.timeframe),
               coalesce(excluded.description, p.description),
               coalesce(excluded.image_uri, p.image_uri),
               coalesce(excluded.content_hash, p.content_hash))
        RETURNING (p.xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
    INTO paintings_inserted, paintings_updated
    FROM upserted;

    WITH written AS (
        INSERT INTO painting_embedding AS pe (painting_id, model, embedding, content_hash)
        SELECT p.painting_id, m.name, s.embedding, s.content_hash
        FROM pg_temp.painting_staging s
        JOIN painting p ON p.image_file = s.image_file
        WHERE s.embedding IS NOT NULL
        ORDER BY p.painting_id
        ON CONFLICT ON CONSTRAINT painting_embedding_pkey DO UPDATE SET
            embedding = excluded.embedding, content_hash = excluded.content_hash,
            embedded_at = now()
        WHERE pe.embedding IS DISTINCT FROM excluded.embedding
           OR pe.content_hash IS DISTINCT FROM excluded.content_hash
        RETURNING 1
    )
    SELECT count(*) INTO embeddings_written FROM written;

    -- an image embedded now is no longer a failure
    DELETE FROM embedding_failure f
    USING pg_temp.painting_staging s
    WHERE f.image_file = s.image_file AND f.model = m.name AND s.embedding IS NOT NULL;

    TRUNCATE pg_temp.painting_staging;
    RETURN NEXT;
END
$$;

-- ==== functions/70_search_defaults.sql (as of 0012)

-- The database's default hnsw.ef_search, sized to the collection.
--
--   SELECT tune_search_defaults();                    -- for the vectors stored now
--   SELECT tune_search_defaults(vectors => 2000000);  -- for the size you are heading to
--   SELECT recommended_ef_search(1000000);            -- what it would pick: 150
--
-- Recall at a fixed ef_search falls as the HNSW graph grows. On the benchmark's data
-- (bench/README.md) ef_search 60-100 reaches recall@10 0.983 at 100k vectors, while 1M
-- vectors need 150 for 0.980 (100 gives 0.934 there). Migration 0002 set the database
-- default to 100 for every size; pgallery's loader now calls tune_search_defaults() after
-- each load, so the default follows the collection: for new sessions, for the search_*
-- functions and hand-written queries alike. Sessions and calls still override it.

-- A setting of the current database (ALTER DATABASE ... SET), as text; NULL if not set.
CREATE OR REPLACE FUNCTION database_setting(setting_name text) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
BEGIN ATOMIC
    SELECT substr(entry, length(setting_name) + 2)
    FROM pg_catalog.pg_db_role_setting s
    JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
    CROSS JOIN LATERAL unnest(s.setconfig) AS entry
    WHERE d.datname = current_database() AND s.setrole = 0
      AND entry LIKE setting_name || '=%';
END;

-- ef = 60 * (vectors / 100k)^0.4, fitted to the two measured sizes (60 suffices at 100k,
-- 150 at 1M), rounded to tens, kept between the migration's 100 and pgvector's maximum
-- of 1000. Beyond 1M it is an extrapolation: 200 at 2M, 380 at 10M.
CREATE OR REPLACE FUNCTION recommended_ef_search(vectors bigint) RETURNS integer
LANGUAGE sql IMMUTABLE
RETURN least(1000, greatest(100,
           round(60 * power(greatest(vectors, 0) / 100000.0, 0.4) / 10)::integer * 10));

-- Set the database default hnsw.ef_search to recommended_ef_search() of `vectors`, or of
-- the vectors painting_embedding holds by the planner's statistics (ANALYZE first). Returns
-- the default new sessions get.
--
-- Only a default pgallery set is changed: each one is recorded beside it in
-- pgallery.tuned_ef_search (migration 0011 records 0002's 100), and a default that differs
-- from that record, or has none, was set by someone else: it is kept, with a notice.
-- Runs as its owner (the migrating role, which owns the database) so that
-- pgallery_writer's loads can call it; it formats nothing but an integer into its
-- statements. Without the database's ownership it changes nothing and says so.
CREATE OR REPLACE FUNCTION tune_search_defaults(vectors bigint DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    current_default text;
    recorded text;
    wanted integer;
BEGIN
    -- Two loads finishing together would update the same catalog row ("tuple concurrently
    -- updated"): one at a time, each reading the settings after the other's change.
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.tune_search_defaults'));
    current_default := database_setting('hnsw.ef_search');
    recorded := database_setting('pgallery.tuned_ef_search');
    IF vectors IS NULL THEN
        SELECT greatest(c.reltuples, 0)::bigint INTO vectors
        FROM pg_catalog.pg_class c WHERE c.oid = 'painting_embedding'::regclass;
    END IF;
    wanted := recommended_ef_search(vectors);
    IF recorded IS NULL OR current_default IS DISTINCT FROM recorded THEN
        RAISE NOTICE 'hnsw.ef_search is % for this database, not set by pgallery: '
                     'kept (% would suit % vectors)',
            coalesce(current_default, 'not set'), wanted, vectors;
        RETURN current_default::integer;
    END IF;
    IF current_default = wanted::text THEN
        RETURN wanted;                  -- nothing to change: no catalog write
    END IF;
    -- wanted is an integer: format's %s cannot inject anything here
    EXECUTE format('ALTER DATABASE %I SET hnsw.ef_search = %s', current_database(), wanted);
    EXECUTE format('ALTER DATABASE %I SET pgallery.tuned_ef_search = %s',
                   current_database(), wanted);
    RETURN wanted;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'not the database owner: hnsw.ef_search stays %',
        coalesce(current_default, 'unset');
    RETURN current_default::integer;
END
$$;

-- ==== functions/80_restore_hnsw_index.sql (as of 0012)

-- restore_hnsw_index(): build painting_embedding's HNSW index if the table has none.
--
--   CALL restore_hnsw_index();
--
-- A bulk load drops the HNSW index and builds it once at the end (loading/writer.py). A
-- load killed in between (SIGKILL, a lost connection, power) keeps every committed batch
-- but leaves the table without the index, and searches fall back to reading every vector.
-- Every load ends with this call, as does `pgallery index build`, so the next one puts the
-- index back. Runs as its owner (creating an index needs the table's owner) so that
-- pgallery_writer's loads can call it; it builds nothing but the fixed index below.
CREATE OR REPLACE PROCEDURE restore_hnsw_index()
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    -- two loads finishing together: one builds, the other then finds the index
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.restore_hnsw_index'));
    IF EXISTS (SELECT FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
               JOIN pg_catalog.pg_am am ON am.oid = c.relam
               WHERE i.indrelid = 'painting_embedding'::regclass AND am.amname = 'hnsw') THEN
        RETURN;
    END IF;
    RAISE NOTICE 'painting_embedding had no HNSW index (an interrupted bulk load?): building it';
    -- migration 0009's shape (schema/0009_halfvec_index.sql): nearest_paintings orders by it
    CREATE INDEX painting_embedding_hnsw ON painting_embedding
        USING hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)
        WITH (m = 16, ef_construction = 64);
END
$$;

-- ==== privileges (as of 0012: schema/0004_roles.sql, 0011, 0012)

ALTER FUNCTION nearest_paintings(vector, text, integer, text, text, text, text, text, integer,
                                 integer, bigint, integer, integer, boolean) SECURITY DEFINER;
ALTER FUNCTION search_by_image(text, integer, text, text, text, text, text, integer, integer,
                               text, integer, integer, boolean) SECURITY DEFINER;
ALTER FUNCTION search_hybrid(text, integer, text, text, text, text, text, integer, integer,
                             text, integer, integer, boolean, integer, integer)
    SECURITY DEFINER;
ALTER FUNCTION prompt_vector(text, text) SECURITY DEFINER;
ALTER PROCEDURE build_ivfflat_index(integer) SECURITY DEFINER;
ALTER FUNCTION tune_search_defaults(bigint) SECURITY DEFINER;
ALTER PROCEDURE restore_hnsw_index() SECURITY DEFINER;

REVOKE EXECUTE ON FUNCTION
    search_by_vector(vector, integer, text, text, text, text, text, integer, integer, text,
                     integer, integer, boolean),
    search_by_image(text, integer, text, text, text, text, text, integer, integer, text,
                    integer, integer, boolean),
    search_by_text(text, integer, text, text, text, text, text, integer, integer, text,
                   integer, integer, boolean),
    search_hybrid(text, integer, text, text, text, text, text, integer, integer, text,
                  integer, integer, boolean, integer, integer),
    nearest_paintings(vector, text, integer, text, text, text, text, text, integer, integer,
                      bigint, integer, integer, boolean),
    prompt_vector(text, text),
    create_painting_staging(), merge_staged_paintings(text),
    register_model(text, integer, text), use_model(text),
    store_prompt_embedding(text, vector, text), tune_search_defaults(bigint)
    FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE build_ivfflat_index(integer), drop_ivfflat_index(),
                            restore_hnsw_index()
    FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    search_by_vector(vector, integer, text, text, text, text, text, integer, integer, text,
                     integer, integer, boolean),
    search_by_image(text, integer, text, text, text, text, text, integer, integer, text,
                    integer, integer, boolean),
    search_by_text(text, integer, text, text, text, text, text, integer, integer, text,
                   integer, integer, boolean),
    search_hybrid(text, integer, text, text, text, text, text, integer, integer, text,
                  integer, integer, boolean, integer, integer),
    nearest_paintings(vector, text, integer, text, text, text, text, text, integer, integer,
                      bigint, integer, integer, boolean),
    prompt_vector(text, text)
    TO pgallery_reader;
GRANT EXECUTE ON FUNCTION
    create_painting_staging(), merge_staged_paintings(text),
    register_model(text, integer, text), use_model(text),
    store_prompt_embedding(text, vector, text), tune_search_defaults(bigint)
    TO pgallery_writer;
GRANT EXECUTE ON PROCEDURE build_ivfflat_index(integer), restore_hnsw_index()
    TO pgallery_writer;
