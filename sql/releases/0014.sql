-- The replaceable layer exactly as revision 0014 shipped it: sql/idempotent/ at 0014,
-- placeholders filled. Frozen by `python -m pgallery.migrations freeze`; never edit it.

-- ==== 00_helpers.sql

-- Building blocks shared by the search_* functions. Not meant to be called directly, but
-- harmless if they are.
--
-- pgallery's own errors use SQLSTATEs of class PG (cli/pgallery/errors.py maps them):
--   PGA01 mismatched dimension     PGA02 invalid vector (zero, NaN, inf)
--   PGA03 painting not found       PGA04 unknown or no active model
--   PGA05 prompt not embedded      PGA06 invalid argument (k)
--   PGA07 invalid filter           PGA08 composed query with no direction

-- One search's parameters as a single value: the fields are _search_parameters.sql's, so
-- the functions pass one request down instead of a dozen arguments each.
CREATE TYPE search_request AS (
    k integer,
    author text,
    technique text,
    school text,
    painting_type text,
    timeframe text,
    year_from integer,
    year_to integer,
    model text,
    ef_search integer,
    probes integer,
    exact boolean,
    min_similarity double precision,
    order_by text,
    page integer
);

-- '%value%' for ILIKE, with LIKE's own wildcards in the value taken literally: a filter
-- 'van_gogh' must not match 'vanXgogh', and '%' must not match everything.
CREATE OR REPLACE FUNCTION like_pattern(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
SET search_path FROM CURRENT
RETURN '%' || replace(replace(replace(value, '\', '\\'), '%', '\%'), '_', '\_') || '%';

-- Does painting p pass the request's metadata filters? NULL means "no filter". Written
-- as a plain SQL expression with no SET clause so that the planner inlines it into the
-- caller's query and, with the request's values known (each filtered statement is planned
-- per call), drops the arms of the filters not given and answers the rest from the
-- painting_* indexes.
--   author, technique, school: case-insensitive substring ('gogh' matches 'GOGH, Vincent van')
--   painting_type, timeframe:  case-insensitive exact
--   year_from, year_to:        the painting's parsed year range overlaps [year_from, year_to]
-- The range is built half-open, [year_from, year_to + 1), as int4range stores it anyway;
-- int4range(year_from, year_to, '[]') would overflow computing that bound for year_to =
-- 2147483647, the largest integer, which is as good as no upper bound.
-- A new filter goes here and in has_filters() below (and in _search_parameters.sql).
CREATE OR REPLACE FUNCTION painting_matches(p painting, r search_request) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (r.author IS NULL OR p.author ILIKE like_pattern(r.author))
   AND (r.technique IS NULL OR p.technique ILIKE like_pattern(r.technique))
   AND (r.school IS NULL OR p.school ILIKE like_pattern(r.school))
   AND (r.painting_type IS NULL OR lower(p.painting_type) = lower(r.painting_type))
   AND (r.timeframe IS NULL OR lower(p.timeframe) = lower(r.timeframe))
   AND (r.year_from IS NULL AND r.year_to IS NULL
        OR p.years && int4range(r.year_from,
                                CASE WHEN r.year_to < 2147483647 THEN r.year_to + 1 END,
                                '[)'));

-- Does the request filter at all?
CREATE OR REPLACE FUNCTION has_filters(r search_request) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN num_nonnulls(r.author, r.technique, r.school, r.painting_type, r.timeframe,
                    r.year_from, r.year_to) > 0;

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

-- ==== 01_settings.sql

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

-- A search_request from named arguments, the search functions' own, for psql:
--   SELECT * FROM nearest_paintings(q, checked_request(search_request(k => 5,
--                                                     school => 'dutch')), NULL);
CREATE OR REPLACE FUNCTION search_request(
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
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1
) RETURNS search_request
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request;

-- The request a search runs: its arguments checked, the model resolved to a name (the
-- active model's when NULL: PGA04 if there is none), and each recall setting resolved as
-- above. The search_* functions call it first, outside nearest_paintings' SET clauses.
CREATE OR REPLACE FUNCTION checked_request(r search_request) RETURNS search_request
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    r.model := (resolve_model(r.model)).name;
    IF r.k IS NULL OR r.k < 1 OR r.k > 10000 THEN
        RAISE EXCEPTION 'k must be between 1 and 10000, got %', coalesce(r.k::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    IF r.year_from > r.year_to THEN
        RAISE EXCEPTION 'year_from (%) is after year_to (%)', r.year_from, r.year_to
            USING ERRCODE = 'PGA07';
    END IF;
    IF r.page IS NULL OR r.page < 1 OR r.page::bigint * r.k > 100000 THEN
        RAISE EXCEPTION 'page must be 1 or more, with page * k at most 100000; got page %',
                        coalesce(r.page::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    IF r.min_similarity NOT BETWEEN -1 AND 1 OR r.min_similarity = 'NaN' THEN
        RAISE EXCEPTION 'min_similarity must be between -1 and 1, got %', r.min_similarity
            USING ERRCODE = 'PGA06';
    END IF;
    r.order_by := coalesce(lower(r.order_by), 'similarity');
    IF r.order_by NOT IN ('similarity', 'date', 'date_desc') THEN
        RAISE EXCEPTION 'order_by must be similarity, date or date_desc, got %',
                        quote_literal(left(r.order_by, 50))
            USING ERRCODE = 'PGA06';
    END IF;
    r.ef_search := ef_search_setting(r.ef_search);
    r.probes := probes_setting(r.probes);
    r.exact := exact_setting(r.exact);
    RETURN r;
END
$$;

-- ==== 10_nearest_paintings.sql

-- How many paintings pass the filters, as the planner estimates it from the statistics
-- ANALYZE keeps; NULL before painting's first ANALYZE (the estimate would be a guess) and
-- when a custom scan answers (Citus's distributed scan carries a placeholder row count).
-- EXPLAIN is only allowed in a VOLATILE function, hence a function of its own (it changes
-- nothing, so the STABLE nearest_paintings may call it). The statement text is fixed; the
-- filter values are bound parameters, as everywhere else.
CREATE OR REPLACE FUNCTION estimated_matches(r search_request) RETURNS float8
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
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM painting p WHERE painting_matches(p, $1)'
       INTO plan
       USING r;
    IF plan -> 0 -> 'Plan' ->> 'Node Type' = 'Custom Scan' THEN
        RETURN NULL;
    END IF;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END
$$;

-- The last step of every search: a page of rows (best first) with the request's cut-off
-- and order applied.
--   min_similarity  drops rows below it (rows without a similarity, a hybrid search's
--                   keyword-only hits, too). Rows come best first, so this only shortens
--                   the page: the scan that found them stopped at k rows anyway.
--   order_by        'similarity' (best first), 'date' / 'date_desc': the same rows by the
--                   first year of their parsed date, unknown years last either way.
CREATE OR REPLACE FUNCTION finished_page(rows search_result[], r search_request)
RETURNS SETOF search_result
LANGUAGE sql STABLE
SET search_path FROM CURRENT
BEGIN ATOMIC
    SELECT x.*
    FROM unnest(rows) AS x
    JOIN painting p ON p.painting_id = x.painting_id
    WHERE r.min_similarity IS NULL OR x.similarity >= r.min_similarity
    ORDER BY CASE WHEN r.order_by = 'date' THEN lower(p.years) END ASC NULLS LAST,
             CASE WHEN r.order_by = 'date_desc' THEN lower(p.years) END DESC NULLS LAST,
             x.score DESC, x.distance, x.painting_id;
END;

-- The n rows of the compact copy (painting_embedding_half) nearest to qh, for the exact
-- path of nearest_paintings below. A function of its own so that its scan can use
-- parallel workers: PL/pgSQL runs a SELECT ... INTO in the leader alone, RETURN QUERY with
-- workers (0.6-0.75x the time at 100k on two cores, bench/README.md).
CREATE OR REPLACE FUNCTION compact_candidates(qh halfvec, model_name text,
                                              exclude_painting bigint, n integer)
RETURNS TABLE (painting_id bigint, distance float8)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN QUERY
    SELECT hv.painting_id, hv.embedding <=> qh
    FROM painting_embedding_half hv
    WHERE hv.model = model_name AND hv.painting_id IS DISTINCT FROM exclude_painting
    ORDER BY (hv.embedding <=> qh) + 0      -- "+ 0": a scan of every row, never an index
    LIMIT n;
END
$$;

-- The engine behind every search_* function: the k paintings nearest to a vector among
-- those that pass the request's metadata filters, under the request's model.
--
--   SELECT * FROM nearest_paintings('[...]'::vector,
--                                   checked_request(search_request(
--                                       k => 10, painting_type => 'portrait')),
--                                   NULL);
--
-- The request comes from checked_request(): arguments checked, model and recall settings
-- (ef_search, probes, exact) resolved; this function applies the settings with
-- set_config() and its own SET clauses keep those changes from leaking into the caller's
-- transaction.
--
-- The ANN indexes hold each vector normalised and in half precision (migration 0009):
-- ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh is the shape they answer, where
-- qh is the query normalised the same way. Cosine distance does not change under
-- normalisation, half precision ranks as well as single (bench/README.md, section 5), and
-- the index is a third of the size. Normalising first keeps every value within halfvec's
-- range (+-65504). The distances returned are computed on the full vectors.
--
-- Pages: page n is rows (n-1)*k+1 .. n*k of the ranking, each path skipping the earlier
-- pages' rows (OFFSET) in the same scan, so no row comes twice and none is missed across
-- pages; hnsw.ef_search does not depend on the page (the iterative scan supplies the deeper
-- rows), so every page walks the same graph the same way.
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
    r search_request,         -- from checked_request()
    exclude_painting bigint   -- search_by_image leaves the query painting out
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
SECURITY DEFINER  -- reads the vectors the reader may not see (99_privileges.sql)
AS $$
DECLARE
    model_name text := r.model;
    k integer := r.k;
    exact boolean := r.exact;
    prefilter_limit integer;
    matching float8;
    skip integer := (r.page - 1) * r.k;   -- rows of the earlier pages
    n integer;
    candidates bigint[];
    last_compact float8;
    nth_compact float8;
    -- Twice the most that half precision can move a cosine distance between normalised
    -- vectors: each value rounds by at most 2^-11 of itself, so each vector moves by at
    -- most 2^-11 in length and the cosine by under 2 * 2^-11 = 0.001; float32 sums over
    -- 1024 terms add about 1e-5. 0.004 leaves room.
    compact_margin constant float8 := 0.004;
    page search_result[];
    qh halfvec(1024) := l2_normalize(q)::halfvec(1024);  -- the indexes' shape (see above)
    -- The lost-query guard's threshold for this kind of query (see the unfiltered path):
    -- the function a query came through names its kind in pgallery.query_kind (a stored
    -- painting's, a new vector's, a prompt's), and `pgallery index tune` calibrates one
    -- threshold per kind on that kind's own sample, so prompts, naturally farther from
    -- every image, are not sent to exact search for being prompts. Unset: no guard.
    query_kind text := coalesce(nullif(current_setting('pgallery.query_kind', true), ''),
                                CASE WHEN exclude_painting IS NOT NULL THEN 'stored'
                                     ELSE 'vector' END);
    lost_distance float8 := coalesce(nullif(current_setting(
        CASE query_kind WHEN 'stored' THEN 'pgallery.lost_query_distance'
                        WHEN 'text' THEN 'pgallery.lost_query_distance_text'
                        ELSE 'pgallery.lost_query_distance_vector' END, true), '')::float8,
        'Infinity');
    wider integer;
    first_page search_result[];
BEGIN
    -- pgvector accepts hnsw.ef_search up to 1000; beyond, the iterative scan supplies rows
    PERFORM set_config('hnsw.ef_search', least(greatest(r.ef_search, k), 1000)::text, true),
            set_config('ivfflat.probes', r.probes::text, true);

    IF NOT has_filters(r) THEN
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
                  LIMIT k OFFSET skip) AS h
            JOIN painting p ON p.painting_id = h.painting_id;
            -- The lost-query guard: a first page whose k-th row is much farther than the
            -- k-th neighbours of the same kind of query usually are (lost_distance above,
            -- set by `pgallery index tune` from its sample of that kind) came from the
            -- wrong region of the graph (bench/README.md, "Recall you can trust on other
            -- data"): the exact path answers it instead. Other queries run exactly as
            -- before. The thresholds are measured on tenth neighbours, so a longer page (a
            -- hybrid search's candidates, a composed query's extra rows) is judged by its
            -- tenth row, not its last.
            IF cardinality(page) = k
               AND NOT (r.page = 1 AND page[least(k, 10)].distance > lost_distance)
            THEN
                RETURN QUERY SELECT * FROM finished_page(page, r);
                RETURN;
            END IF;
            PERFORM set_config('enable_sort', 'on', true),
                    set_config('enable_hashjoin', 'on', true),
                    set_config('enable_mergejoin', 'on', true),
                    set_config('plan_cache_mode', 'auto', true);
        END IF;
        -- Exact: every vector of the model. The scan reads the compact copy
        -- (painting_embedding_half: normalised half precision, in the row), keeping the
        -- n + extra nearest by its distance, where n = the rows up to this page's end;
        -- those are re-ranked on the full vectors. Rounding to half precision moves a
        -- cosine distance by at most compact_margin / 2 (see below), so every row that
        -- can be among the true n nearest is within compact_margin of the n-th compact
        -- distance: when the last candidate is beyond that, the candidates hold all of
        -- them and the page is exact. Otherwise (a dense crowd at the boundary) the
        -- full vectors are scanned. "+ 0" keeps the planner off the ANN indexes.
        n := skip + k;
        SELECT array_agg(c.painting_id ORDER BY c.d), max(c.d),
               (array_agg(c.d ORDER BY c.d))[least(n, count(*)::integer)]
        INTO candidates, last_compact, nth_compact
        FROM compact_candidates(qh, model_name, exclude_painting, n + greatest(n, 64))
             AS c(painting_id, d);
        IF cardinality(candidates) < n + greatest(n, 64)
           OR last_compact > nth_compact + compact_margin THEN
            RETURN QUERY SELECT * FROM finished_page(ARRAY(
                SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
                           p.painting_type, p.school, p.timeframe, p.date,
                           h.distance, 1 - h.distance, 1 - h.distance)::search_result
                FROM (SELECT e.painting_id, e.embedding <=> q AS distance
                      FROM painting_embedding e
                      WHERE e.model = model_name AND e.painting_id = ANY (candidates)
                      ORDER BY (e.embedding <=> q) + 0, e.painting_id
                      LIMIT k OFFSET skip) AS h
                JOIN painting p ON p.painting_id = h.painting_id), r);
            RETURN;
        END IF;
        RETURN QUERY SELECT * FROM finished_page(ARRAY(
            SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
                       p.painting_type, p.school, p.timeframe, p.date,
                       h.distance, 1 - h.distance, 1 - h.distance)::search_result
            FROM (SELECT e.painting_id, e.embedding <=> q AS distance
                  FROM painting_embedding e
                  WHERE e.model = model_name
                    AND e.painting_id IS DISTINCT FROM exclude_painting
                  ORDER BY (e.embedding <=> q) + 0, e.painting_id
                  LIMIT k OFFSET skip) AS h
            JOIN painting p ON p.painting_id = h.painting_id), r);
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
        matching := estimated_matches(r);
        IF matching IS NULL OR matching BETWEEN prefilter_limit / 2.0 AND prefilter_limit * 2.0
        THEN
            -- A bounded count: stops reading at prefilter_limit matches.
            SELECT count(*) INTO matching FROM (
                SELECT 1 FROM painting p
                WHERE painting_matches(p, r)
                LIMIT prefilter_limit
            ) AS bounded;
        END IF;
        exact := matching < prefilter_limit;
    END IF;

    IF NOT exact THEN
        -- Many rows match: the ANN index with the iterative scan, filters checked as the
        -- graph is walked. The guard here: a first page whose tenth row is beyond the
        -- kind's threshold is answered exactly when fewer than 20 * prefilter_limit
        -- paintings match (reading them costs a few searches), else walks the graph again
        -- with four times the candidates, keeping the nearer of the two pages (exact
        -- over very many matching rows would cost more than the search). A filter leaves
        -- the tenth match farther than the tenth neighbour, so the threshold fires more
        -- often here than unfiltered (bench/recall-by-query-kind.md).
        PERFORM set_config('enable_sort', 'off', true);
        wider := NULL;
        <<walk>>
        LOOP
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
                    AND painting_matches(p, r)
                  ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh
                  LIMIT k OFFSET skip) AS h;
            IF wider IS NOT NULL OR cardinality(page) IS DISTINCT FROM k OR r.page > 1
               OR page[least(k, 10)].distance <= lost_distance OR r.ef_search >= 1000 THEN
                EXIT walk;
            END IF;
            IF matching < 20 * prefilter_limit THEN
                -- few enough matching rows that reading them all costs no more than a
                -- few searches: the exact path below answers
                page := NULL;
                EXIT walk;
            END IF;
            first_page := page;
            wider := least(1000, 4 * greatest(r.ef_search, k));
            PERFORM set_config('hnsw.ef_search', wider::text, true),
                    set_config('ivfflat.probes', least(32768, 4 * r.probes)::text, true);
        END LOOP walk;
        IF wider IS NOT NULL AND cardinality(page) IS DISTINCT FROM k
           OR page[k].distance > first_page[k].distance THEN
            page := first_page;
        END IF;
        IF cardinality(page) = k THEN
            RETURN QUERY SELECT * FROM finished_page(page, r);
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
    RETURN QUERY SELECT * FROM finished_page(ARRAY(
        SELECT ROW(ranked.*, 1 - ranked.distance, 1 - ranked.distance)::search_result FROM (
            SELECT p.painting_id, p.image_file, p.title, p.author, p.technique,
                   p.painting_type, p.school, p.timeframe, p.date,
                   e.embedding <=> q AS distance
            FROM painting p
            JOIN painting_embedding e ON e.painting_id = p.painting_id AND e.model = model_name
            WHERE p.painting_id IS DISTINCT FROM exclude_painting
              AND painting_matches(p, r)
            -- "+ 0" keeps the planner off the ANN index: this path must be exact.
            ORDER BY (e.embedding <=> q) + 0, p.painting_id
            LIMIT k OFFSET skip
        ) AS ranked), r);
END
$$;

-- ==== 20_search_by_vector.sql

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
    exact boolean DEFAULT NULL,
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'vector'  -- which guard threshold applies (nearest_paintings)
AS $$
DECLARE
    r search_request := checked_request(ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request);
    m embedding_model := resolve_model(r.model);
BEGIN
    IF query_embedding IS NULL THEN
        RAISE EXCEPTION 'query_embedding is NULL' USING ERRCODE = 'PGA06';
    END IF;
    RETURN QUERY SELECT * FROM nearest_paintings(to_column_vector(query_embedding, m), r, NULL);
END
$$;

-- ==== 21_search_by_image.sql

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
    exact boolean DEFAULT NULL,
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'stored'  -- which guard threshold applies (nearest_paintings)
SECURITY DEFINER  -- reads the query painting's vector (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request(ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request);
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

-- ==== 22_search_by_text.sql

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
    exact boolean DEFAULT NULL,
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'text'  -- which guard threshold applies (nearest_paintings)
AS $$
DECLARE
    r search_request := checked_request(ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request);
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

-- ==== 23_search_hybrid.sql

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
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1,
    rrf_k integer DEFAULT 60,
    candidates integer DEFAULT NULL
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'text'  -- which guard threshold applies (nearest_paintings)
SECURITY DEFINER  -- reads distances for the fused rows (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request(ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request);
    m embedding_model := resolve_model(r.model);
    q vector;
    n integer;
    wide search_request := r;   -- the semantic ranking's request: n rows, not k
    words tsquery;
BEGIN
    IF prompt IS NULL OR btrim(prompt) = '' THEN
        RAISE EXCEPTION 'the prompt is empty' USING ERRCODE = 'PGA06';
    END IF;
    IF rrf_k IS NULL OR rrf_k < 0 THEN
        RAISE EXCEPTION 'rrf_k must be 0 or more' USING ERRCODE = 'PGA06';
    END IF;
    -- each ranking offers enough rows for this page: the earlier pages' and this one's
    n := greatest(coalesce(candidates, 4 * k * r.page), k * r.page, 40);
    wide.k := n;                -- the semantic ranking: best first, whole, no cut-off
    wide.page := 1;
    wide.min_similarity := NULL;
    wide.order_by := 'similarity';
    q := prompt_vector(prompt, m.name);
    IF q IS NULL THEN
        RAISE NOTICE 'prompt not embedded for model %: keyword ranking only', m.name
            USING HINT = CASE WHEN m.provider = 'local' THEN
                format('model %s embeds images only; for the semantic half add a text '
                       'model with: pgallery reembed --provider clip (or azure)', m.name)
                ELSE 'pgallery search text "<prompt>" embeds it (needs a text-capable provider)'
                END;
    END IF;
    -- Any of the prompt's words, stemmed (english) or as written (simple, for names).
    -- plainto_tsquery parses the text safely; its canonical output joins lexemes with
    -- ' & ', which we turn into ' | ' (lexemes are quoted and hold no spaces).
    words := replace(plainto_tsquery('english', prompt)::text, ' & ', ' | ')::tsquery
          || replace(plainto_tsquery('simple', prompt)::text, ' & ', ' | ')::tsquery;

    RETURN QUERY SELECT * FROM finished_page(ARRAY(
    WITH semantic AS (
        SELECT s.painting_id, row_number() OVER (ORDER BY s.distance, s.painting_id) AS rank
        FROM nearest_paintings(q, wide, NULL) AS s
        WHERE q IS NOT NULL
    ),
    keyword AS (
        SELECT ranked.painting_id,
               row_number() OVER (ORDER BY ranked.rank_cd DESC, ranked.painting_id) AS rank
        FROM (
            SELECT p.painting_id, ts_rank_cd(p.search_document, words) AS rank_cd
            FROM painting p
            WHERE p.search_document @@ words
              AND painting_matches(p, r)
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
        LIMIT k OFFSET (r.page - 1) * k
    )
    SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
               p.painting_type, p.school, p.timeframe, p.date,
               d.distance, 1 - d.distance, f.rrf_score::double precision)::search_result
    FROM fused f
    JOIN painting p ON p.painting_id = f.painting_id
    LEFT JOIN LATERAL (
        SELECT e.embedding <=> q AS distance FROM painting_embedding e
        WHERE e.painting_id = f.painting_id AND e.model = m.name AND q IS NOT NULL
    ) AS d ON true
    ORDER BY f.rrf_score DESC, f.painting_id), r);
END
$$;

-- ==== 24_search_combined.sql

-- search_combined: one query made of several terms, each weighted, positive or negative.
--
--   SELECT title, author, similarity
--   FROM search_combined(paintings => ARRAY['00015-shipwreck-on-a-rocky-coast.jpg'],
--                        prompts => ARRAY['stormy sea'], prompt_weights => ARRAY[2],
--                        negative_prompts => ARRAY['people'], k => 5);
--
-- Terms, any mix of them, at least one:
--   paintings           stored paintings by image_file (their vector under the model)
--   prompts             text prompts embedded before (the prompt cache, as search_by_text:
--                       `pgallery search text "..."` or `pgallery search query` embeds them)
--   vectors             raw vectors (1024-d or the model's own dimension, zero-padded)
--   negative_paintings, negative_prompts, negative_vectors    the same, subtracted
--   painting_weights, prompt_weights, vector_weights          one weight per positive term
--                       of that kind, in order (NULL = 1 each). A negative weight subtracts
--                       too: paintings => ARRAY['a.jpg','b.jpg'], painting_weights =>
--                       ARRAY[1, -0.5] is "a, minus half of b". Negative terms weigh 1.
-- The query vector is sum(weight * term / |term|) over the terms (negatives with -1),
-- normalised again: every term counts by its weight, whatever its own length, so a prompt
-- and an image pull equally at equal weights (with two terms of weight 1 this is the
-- normalised average of the MyScale tutorial, and of `pgallery search image --text`).
-- A query whose terms cancel out (zero vector), or a weight that is NaN or infinite,
-- raises PGA08. An unknown painting raises PGA03, a prompt not in the cache PGA05.
-- Every stored painting named in the query, positive or negative, is left out of the
-- results, as search_by_image leaves out its own painting. The other parameters (k,
-- filters, model, recall settings) are search_by_vector's; distance and similarity are to
-- the composed vector.
--
-- Nothing here is dynamic SQL: every term is a bound value, read by fixed statements.
CREATE OR REPLACE FUNCTION search_combined(
    paintings text[] DEFAULT NULL,
    prompts text[] DEFAULT NULL,
    vectors vector[] DEFAULT NULL,
    negative_paintings text[] DEFAULT NULL,
    negative_prompts text[] DEFAULT NULL,
    negative_vectors vector[] DEFAULT NULL,
    painting_weights real[] DEFAULT NULL,
    prompt_weights real[] DEFAULT NULL,
    vector_weights real[] DEFAULT NULL,
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
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- which guard threshold applies (nearest_paintings): a new vector's, a prompt's when the
-- query has a prompt term (set below)
SET pgallery.query_kind = 'vector'
SECURITY DEFINER  -- reads the named paintings' vectors (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request(ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request);
    m embedding_model := resolve_model(r.model);
    -- the terms, one row each: (kind, label for messages, vector, weight)
    term_kind text[] := '{}';
    term_label text[] := '{}';
    term_vector vector[] := '{}';
    term_weight float8[] := '{}';
    named_ids bigint[] := '{}';     -- the stored paintings the query names
    label text;
    v vector;
    w float8;
    pid bigint;
    scale float8;
    q vector;
    wide search_request;
    i integer;
BEGIN
    IF cardinality(painting_weights) IS DISTINCT FROM cardinality(paintings)
           AND painting_weights IS NOT NULL
       OR cardinality(prompt_weights) IS DISTINCT FROM cardinality(prompts)
           AND prompt_weights IS NOT NULL
       OR cardinality(vector_weights) IS DISTINCT FROM cardinality(vectors)
           AND vector_weights IS NOT NULL THEN
        RAISE EXCEPTION 'each weights array needs one weight per term of its kind '
                        '(painting_weights for paintings, prompt_weights for prompts, '
                        'vector_weights for vectors)'
            USING ERRCODE = 'PGA06';
    END IF;

    -- Stored paintings, positive then negative.
    FOR i IN 1 .. coalesce(cardinality(paintings), 0) + coalesce(cardinality(negative_paintings), 0)
    LOOP
        IF i <= coalesce(cardinality(paintings), 0) THEN
            label := paintings[i];
            w := coalesce(painting_weights[i], 1);
        ELSE
            label := negative_paintings[i - coalesce(cardinality(paintings), 0)];
            w := -1;
        END IF;
        SELECT p.painting_id INTO pid FROM painting p WHERE p.image_file = label;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no painting with image_file %', quote_nullable(label)
                USING ERRCODE = 'PGA03',
                      HINT = 'image_file is the file name as loaded, e.g. ''19873-1portrai.jpg''';
        END IF;
        SELECT e.embedding INTO v
        FROM painting_embedding e WHERE e.painting_id = pid AND e.model = m.name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'painting % has no embedding for model %',
                            quote_literal(label), quote_literal(m.name)
                USING ERRCODE = 'PGA03',
                      HINT = 'pgallery load embeds what is missing for the active model';
        END IF;
        named_ids := named_ids || pid;
        term_kind := term_kind || 'painting'::text;
        term_label := term_label || label;
        term_vector := term_vector || v;
        term_weight := term_weight || w;
    END LOOP;

    -- Prompts, from the cache (SQL cannot call the embedding API).
    FOR i IN 1 .. coalesce(cardinality(prompts), 0) + coalesce(cardinality(negative_prompts), 0)
    LOOP
        IF i <= coalesce(cardinality(prompts), 0) THEN
            label := prompts[i];
            w := coalesce(prompt_weights[i], 1);
        ELSE
            label := negative_prompts[i - coalesce(cardinality(prompts), 0)];
            w := -1;
        END IF;
        IF label IS NULL OR btrim(label) = '' THEN
            RAISE EXCEPTION 'a prompt of the query is empty' USING ERRCODE = 'PGA06';
        END IF;
        v := prompt_vector(label, m.name);
        IF v IS NULL THEN
            RAISE EXCEPTION 'the prompt % has not been embedded for model %',
                            quote_literal(left(label, 200)), quote_literal(m.name)
                USING ERRCODE = 'PGA05',
                      HINT = 'embed it once with: pgallery search text "<prompt>"';
        END IF;
        term_kind := term_kind || 'prompt'::text;
        term_label := term_label || label;
        term_vector := term_vector || v;
        term_weight := term_weight || w;
    END LOOP;

    -- Raw vectors: checked and padded like search_by_vector's (PGA01, PGA02 if zero).
    FOR i IN 1 .. coalesce(cardinality(vectors), 0) + coalesce(cardinality(negative_vectors), 0)
    LOOP
        IF i <= coalesce(cardinality(vectors), 0) THEN
            v := vectors[i];
            w := coalesce(vector_weights[i], 1);
        ELSE
            v := negative_vectors[i - coalesce(cardinality(vectors), 0)];
            w := -1;
        END IF;
        IF v IS NULL THEN
            RAISE EXCEPTION 'a vector of the query is NULL' USING ERRCODE = 'PGA06';
        END IF;
        term_kind := term_kind || 'vector'::text;
        term_label := term_label || ('vector ' || i);
        term_vector := term_vector || to_column_vector(v, m);
        term_weight := term_weight || w;
    END LOOP;

    IF cardinality(term_vector) = 0 THEN
        RAISE EXCEPTION 'the query has no terms: give paintings, prompts or vectors'
            USING ERRCODE = 'PGA06';
    END IF;
    IF EXISTS (SELECT FROM unnest(term_weight) AS t(x)
               WHERE x = 'NaN'::float8 OR x IN ('Infinity', '-Infinity')) THEN
        RAISE EXCEPTION 'a weight of the query is NaN or infinite'
            USING ERRCODE = 'PGA08';
    END IF;

    -- The weights are divided by the largest |weight| first: the result is normalised, so
    -- scaling every weight changes nothing, and this way no sum of unit vectors times
    -- weights of at most 1 can overflow real (weights of 1e38 would).
    scale := (SELECT max(abs(x)) FROM unnest(term_weight) AS t(x));
    IF scale = 0 THEN
        RAISE EXCEPTION 'every weight of the query is 0: it has no direction'
            USING ERRCODE = 'PGA08';
    END IF;
    -- pgvector's * is element-wise, so weight * vector is vector * [w, w, ..., w];
    -- sum(vector) is pgvector's aggregate. Stored and prompt vectors may be the model's
    -- dimension zero-padded to 1024: padding changes no norm and no cosine.
    SELECT sum(l2_normalize(t.tv) * array_fill((t.tw / scale)::real, ARRAY[1024])::vector)
    INTO q
    FROM unnest(term_vector, term_weight) AS t(tv, tw)
    WHERE t.tw <> 0;
    -- Terms that cancel leave rounding noise, not a direction: a sum of a few unit vectors
    -- with weights <= 1 has a norm of order 1 unless the terms cancel, and float rounding
    -- leaves ~1e-7 per element (~3e-6 over 1024 elements); 1e-5 tells them apart.
    IF q IS NULL OR vector_norm(q) < 1e-5 OR vector_norm(q) = 'NaN'::float8 THEN
        RAISE EXCEPTION 'the query''s terms cancel out: the combined vector is zero, so it '
                        'has no direction to compare'
            USING ERRCODE = 'PGA08',
                  HINT = 'change a weight, or drop a negative term that repeats a positive one';
    END IF;
    q := l2_normalize(q);
    IF 'prompt' = ANY (term_kind) THEN
        -- a prompt pulls the query away from every image: its guard threshold is the
        -- prompts' (local to this call: the SET clause above restores it)
        PERFORM set_config('pgallery.query_kind', 'text', true);
    END IF;

    named_ids := ARRAY(SELECT DISTINCT x FROM unnest(named_ids) AS t(x));
    IF cardinality(named_ids) <= 1 THEN
        -- The common case (at most one stored painting): nearest_paintings leaves it out
        -- itself, so every setting of the request applies exactly as elsewhere.
        RETURN QUERY SELECT * FROM nearest_paintings(q, r, named_ids[1]);
        RETURN;
    END IF;
    -- Several: nearest_paintings leaves out one id, so ask it for k + (number named) rows
    -- and drop the named ones. Correct under filters too: among the paintings passing
    -- them, the k + n nearest contain at most n named ones, so the first k others that
    -- remain are the k nearest non-named. The engine's order is kept (ordinality).
    -- For page p that means the first p * k + n rows of one ranking, best first and
    -- uncut, of which the others' rows (p - 1) * k + 1 .. p * k are this page; the
    -- request's cut-off and order then apply to them as everywhere (finished_page).
    wide := r;
    wide.k := r.page * r.k + cardinality(named_ids);
    wide.page := 1;
    wide.min_similarity := NULL;
    wide.order_by := 'similarity';
    RETURN QUERY SELECT * FROM finished_page(ARRAY(
        SELECT ROW(n.painting_id, n.image_file, n.title, n.author, n.technique,
                   n.painting_type, n.school, n.timeframe, n.date, n.distance,
                   n.similarity, n.score)::search_result
        FROM nearest_paintings(q, wide, NULL)
             WITH ORDINALITY AS n(painting_id, image_file, title, author, technique,
                                  painting_type, school, timeframe, date, distance,
                                  similarity, score, position)
        WHERE n.painting_id <> ALL (named_ids)
        ORDER BY n.position
        OFFSET (r.page - 1) * r.k LIMIT r.k), r);
END
$$;

-- ==== 25_near_duplicates.sql

-- Near-duplicate groups: versions of the same picture (resized, cropped a little,
-- re-encoded, colour-shifted), one row per painting that has at least one.
--
--   SELECT * FROM near_duplicates();                          -- the model's own threshold
--   SELECT * FROM near_duplicates(0.97, school => 'dutch');   -- stricter, one school
--
-- Rows: group_id (1 = the largest group), painting_id, image_file, title, author and
-- similarity, the duplicate score of the painting and its group's most central member
-- (that member first, with 1). A group is a connected component of the pairs scoring
-- >= min_similarity. Paintings outside the filters are neither in a group nor link one.

-- One row of near_duplicates() (a type, not RETURNS TABLE: OUT columns may not share the
-- filters' names, author for one).
CREATE TYPE near_duplicate AS (
    group_id     integer,
    painting_id  bigint,
    image_file   text,
    title        text,
    author       text,
    similarity   double precision
);

-- What a pair of vectors is compared on to call it a duplicate: the model's vector as it
-- is, except for the offline `local` descriptors (cli/pgallery/providers/local.py), whose
-- colour histograms (foreground, regions, texture: 704 of the 1024 dimensions) are the
-- same for any two line drawings on black, so that unrelated star charts score 0.96-0.99
-- while a JPEG q50 or colour-shifted copy of one scores 0.79. Their layout (8 x 8 tiny
-- image, dimensions 485-676) and edge (gradient orientations, 853-1004) blocks do tell a
-- copy from another drawing; the signature is those two blocks, each unit length, so its
-- cosine is the mean of the two blocks' cosines. Measured in bench/duplicates_bench.py.
-- No SET clause, like painting_matches(): the planner inlines it into near_duplicates'
-- statement (whose own search_path is pinned), where a call per candidate pair, with a
-- configuration change each, cost more than the comparison.
CREATE OR REPLACE FUNCTION duplicate_signature(model text, embedding vector) RETURNS vector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN model = 'local-descriptors/v1'
            THEN l2_normalize(subvector(embedding, 485, 192))
                 || l2_normalize(subvector(embedding, 853, 152))
            ELSE embedding END;

-- The default min_similarity of near_duplicates() for a model, on duplicate_signature's
-- scale; NULL when no calibration was made for the model (near_duplicates then takes 0.95
-- and says so). Calibrated by bench/duplicates_bench.py on the 634 real images of
-- ../shared/data/real-gallery plus four altered copies of each (50% resize, 10% crop,
-- JPEG q50, brightness x1.1 + hue +5 degrees): bench/README.md, "Near-duplicate groups".
--   local-descriptors/v1  0.93: copies grouped with their original at recall 0.98, 0.98 of
--                         the grouped pairs true (raw cosine reaches precision 0.95 only at
--                         0.97, where recall is 0.88)
-- Kept here rather than in a table so that no schema change was needed; a model's row of
-- embedding_model could carry it later.
CREATE OR REPLACE FUNCTION duplicate_threshold(model text) RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
RETURN CASE model WHEN 'local-descriptors/v1' THEN 0.93 END;

-- How: not all pairs. For each painting, its `neighbours` nearest (default 10) under the
-- model through the HNSW index (iterative scan, with the filters checked as the graph is
-- walked), scored on duplicate_signature; pairs at or above the threshold are edges; the
-- components come from a union-find over the edges (few: duplicates are rare; at a
-- threshold that links everything, at most n * neighbours). A copy is its original's
-- nearest neighbour or nearly (bench/local_quality.py: rank 1 for >= 97%), so 10
-- neighbours find the pairs; a group larger than 10 still comes together through chains.
-- Cost: n index searches, about linear in n (bench/README.md has the times).
-- ef_search: the HNSW candidate list of each search; NULL = 20 (see below).
CREATE OR REPLACE FUNCTION near_duplicates(
    min_similarity real DEFAULT NULL,
    model text DEFAULT NULL,
    author text DEFAULT NULL,
    technique text DEFAULT NULL,
    school text DEFAULT NULL,
    painting_type text DEFAULT NULL,
    timeframe text DEFAULT NULL,
    year_from integer DEFAULT NULL,
    year_to integer DEFAULT NULL,
    neighbours integer DEFAULT 10,
    ef_search integer DEFAULT NULL
) RETURNS SETOF near_duplicate
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- Placeholders: they make the set_config() calls below local to this function.
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET enable_sort = on
SET plan_cache_mode = auto
SECURITY DEFINER  -- reads every vector of the model (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request(search_request(
        author => near_duplicates.author, technique => near_duplicates.technique,
        school => near_duplicates.school, painting_type => near_duplicates.painting_type,
        timeframe => near_duplicates.timeframe, year_from => near_duplicates.year_from,
        year_to => near_duplicates.year_to, model => near_duplicates.model,
        ef_search => near_duplicates.ef_search));
    model_name text := r.model;
    threshold real := min_similarity;
    edge_a bigint[];          -- the pairs at or above the threshold (painting ids)
    edge_b bigint[];
    nodes bigint[];           -- the paintings in a pair, ascending
    ia integer[];             -- the pairs as positions in nodes
    ib integer[];
    parent integer[];         -- union-find forest over the positions
    x integer;
    y integer;
BEGIN
    IF threshold IS NULL THEN
        threshold := duplicate_threshold(model_name);
        IF threshold IS NULL THEN
            threshold := 0.95;
            RAISE NOTICE 'no calibrated duplicate threshold for model %: using 0.95', model_name
                USING HINT = 'pass min_similarity (higher: stricter)';
        END IF;
    END IF;
    IF threshold IS NULL OR NOT threshold BETWEEN -1 AND 1 THEN
        RAISE EXCEPTION 'min_similarity must be between -1 and 1, got %', threshold
            USING ERRCODE = 'PGA06';
    END IF;
    IF neighbours IS NULL OR neighbours < 1 OR neighbours > 1000 THEN
        RAISE EXCEPTION 'neighbours must be between 1 and 1000, got %',
                        coalesce(neighbours::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    -- The same steering as nearest_paintings: the index scan even without statistics
    -- (enable_sort off), and a plan made for this call's filter values. The candidate list
    -- is 20 (at least `neighbours`), not the database's search default (100, sized for
    -- recall@10 of any query): a copy is its original's nearest neighbour or nearly, and
    -- the calibration groups exactly the same at ef_search 10, 20, 40 and 100, while n
    -- searches at 20 cost about two thirds of n at 40 (bench/duplicates_bench.py).
    PERFORM set_config('hnsw.ef_search',
                       least(greatest(coalesce(near_duplicates.ef_search, 20), neighbours),
                             1000)::text, true),
            set_config('enable_sort', 'off', true),
            set_config('plan_cache_mode', 'force_custom_plan', true);

    SELECT array_agg(a.painting_id), array_agg(nb.painting_id)
    INTO edge_a, edge_b
    FROM painting_embedding a
    JOIN painting pa ON pa.painting_id = a.painting_id
    CROSS JOIN LATERAL (
        SELECT e.painting_id,
               1 - (duplicate_signature(model_name, e.embedding)
                    <=> duplicate_signature(model_name, a.embedding)) AS score
        FROM painting_embedding e
        JOIN painting p ON p.painting_id = e.painting_id
        WHERE e.model = model_name
          AND e.painting_id <> a.painting_id
          AND painting_matches(p, r)
        ORDER BY l2_normalize(e.embedding)::halfvec(1024)
                 <=> l2_normalize(a.embedding)::halfvec(1024)
        LIMIT neighbours
    ) AS nb
    WHERE a.model = model_name
      AND painting_matches(pa, r)
      AND nb.score >= threshold;
    IF edge_a IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('enable_sort', 'on', true);

    -- Union-find (path halving) over positions 1..n of the paintings in a pair.
    nodes := ARRAY(SELECT DISTINCT t.id FROM unnest(edge_a || edge_b) AS t(id) ORDER BY t.id);
    SELECT array_agg(pa.i ORDER BY t.o), array_agg(pb.i ORDER BY t.o)
    INTO ia, ib
    FROM unnest(edge_a, edge_b) WITH ORDINALITY AS t(a, b, o)
    JOIN unnest(nodes) WITH ORDINALITY AS pa(id, i) ON pa.id = t.a
    JOIN unnest(nodes) WITH ORDINALITY AS pb(id, i) ON pb.id = t.b;
    parent := ARRAY(SELECT generate_series(1, cardinality(nodes)));
    FOR j IN 1 .. cardinality(ia) LOOP
        x := ia[j];
        WHILE parent[x] <> x LOOP
            parent[x] := parent[parent[x]];
            x := parent[x];
        END LOOP;
        y := ib[j];
        WHILE parent[y] <> y LOOP
            parent[y] := parent[parent[y]];
            y := parent[y];
        END LOOP;
        IF x <> y THEN
            parent[greatest(x, y)] := least(x, y);
        END IF;
    END LOOP;
    FOR x IN 1 .. cardinality(nodes) LOOP   -- every position straight to its root
        parent[x] := parent[parent[x]];     -- (roots are the smallest position: one pass
    END LOOP;                               --  in ascending order suffices)

    -- The most central member of a group: the highest sum of scores over its pairs (ties:
    -- the smallest painting_id); every member's similarity is then its score against it.
    RETURN QUERY
    WITH member AS (
        SELECT n.id AS painting_id, parent[n.i] AS root
        FROM unnest(nodes) WITH ORDINALITY AS n(id, i)
    ),
    pair AS (
        SELECT DISTINCT least(t.a, t.b) AS a, greatest(t.a, t.b) AS b
        FROM unnest(edge_a, edge_b) AS t(a, b)
    ),
    vec AS (
        SELECT mb.painting_id, mb.root, duplicate_signature(model_name, e.embedding) AS sig
        FROM member mb
        JOIN painting_embedding e ON e.painting_id = mb.painting_id AND e.model = model_name
    ),
    strength AS (
        SELECT v.painting_id, v.root, v.sig,
               sum(1 - (v.sig <=> w.sig)) AS total
        FROM vec v
        JOIN pair pr ON v.painting_id IN (pr.a, pr.b)
        JOIN vec w ON w.painting_id = CASE WHEN pr.a = v.painting_id THEN pr.b ELSE pr.a END
        GROUP BY v.painting_id, v.root, v.sig
    ),
    centre AS (
        SELECT DISTINCT ON (s.root) s.root, s.painting_id, s.sig,
               count(*) OVER (PARTITION BY s.root) AS size
        FROM strength s
        ORDER BY s.root, s.total DESC, s.painting_id
    ),
    numbered AS (
        SELECT c.*, row_number() OVER (ORDER BY c.size DESC, c.painting_id)::integer AS gid
        FROM centre c
    )
    SELECT g.gid, p.painting_id, p.image_file, p.title, p.author,
           CASE WHEN v.painting_id = g.painting_id THEN 1
                ELSE 1 - (v.sig <=> g.sig) END::double precision
    FROM vec v
    JOIN numbered g ON g.root = v.root
    JOIN painting p ON p.painting_id = v.painting_id
    ORDER BY g.gid, v.painting_id <> g.painting_id, 6 DESC, p.painting_id;
END
$$;

-- ==== 30_prompts.sql

-- The text-prompt embedding cache (table prompt_embedding).
--
--   SELECT prompt_vector('a stormy sea', 'azure-vision/2023-04-15');   -- NULL if not cached
--   SELECT store_prompt_embedding('a stormy sea', '[...]'::vector, 'azure-vision/2023-04-15');

-- The cached vector of a prompt under a model, or NULL.
CREATE OR REPLACE FUNCTION prompt_vector(prompt text, model text) RETURNS vector
LANGUAGE sql STABLE
SET search_path FROM CURRENT
SECURITY DEFINER  -- the prompt cache is not the reader's to read (99_privileges.sql)
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

-- ==== 40_models.sql

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

-- ==== 50_build_ivfflat_index.sql

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
SECURITY DEFINER  -- an index needs the table's owner; only an integer is formatted below
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

-- ==== 60_merge_staged_paintings.sql

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

-- ==== 70_search_defaults.sql

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
SECURITY DEFINER  -- ALTER DATABASE needs its owner; only an integer is formatted below
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
    -- A measurement on the collection itself (index_tuning, `pgallery index tune`) knows
    -- better than a formula fitted to synthetic data: while one governs the default, keep it.
    IF EXISTS (SELECT FROM index_tuning t
               WHERE t.setting = 'hnsw.ef_search' AND t.chosen IS NOT NULL
                 AND t.chosen::text = current_default) THEN
        RETURN current_default::integer;
    END IF;
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

-- ==== 75_index_tuning.sql

-- Recall measured on the collection itself: `pgallery index tune` (cli/pgallery/tuning.py)
-- samples stored vectors as queries, computes their exact answers, sweeps ef_search (or
-- probes) and records what it found here.
--
--   SELECT * FROM index_tuning_status();          -- the latest measurement per model/index
--   SELECT tuned_at, chosen, mean, p5, share_below_half FROM index_tuning ORDER BY 1 DESC;

-- The latest measurement for each model and index method; `kinds` holds what each kind
-- of query (stored paintings, new vectors, prompts) gets at the chosen default:
--
--   SELECT kind, x.mean, x.p5, x.share_below_half, x.p50_ms, x.guard_rate
--   FROM index_tuning_status() t,
--        jsonb_each(t.kinds) AS k(kind, v),
--        jsonb_to_record(k.v) AS x(mean real, p5 real, share_below_half real,
--                                   p50_ms real, guard_rate real);
--
-- The body is a string, not BEGIN ATOMIC, so that it depends on the table's row type only,
-- not on each column: a revision may add or drop a column with the function in place.
CREATE OR REPLACE FUNCTION index_tuning_status() RETURNS SETOF index_tuning
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT DISTINCT ON (t.model, t.index_method) t.*
    FROM index_tuning t
    ORDER BY t.model, t.index_method, t.tuned_at DESC, t.tuning_id DESC;
$$;

-- What each kind of query was measured to get (cli/pgallery/tuning.py, kinds_document),
-- kept with the measurement it belongs to, and the lost-query guard's threshold of each
-- kind made the database's default: pgallery.lost_query_distance_vector for new vectors
-- (search_by_vector, uploads, composed queries), pgallery.lost_query_distance_text for
-- prompts; a kind not measured has its threshold reset (no guard). The stored paintings'
-- threshold is record_index_tuning's. Runs as its owner, like record_index_tuning; it
-- formats nothing but numbers into its statements.
CREATE OR REPLACE FUNCTION record_query_kinds(tuning_id bigint, kinds jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SECURITY DEFINER  -- ALTER DATABASE needs its owner; only numbers are formatted below
AS $$
DECLARE
    threshold float8;
BEGIN
    IF jsonb_typeof(kinds) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'kinds must be a JSON object of kind -> figures'
            USING ERRCODE = 'PGA06';
    END IF;
    UPDATE index_tuning t SET kinds = record_query_kinds.kinds
    WHERE t.tuning_id = record_query_kinds.tuning_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no index_tuning row %', tuning_id USING ERRCODE = 'PGA06';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.tune_search_defaults'));
    BEGIN
        threshold := (kinds -> 'vector' ->> 'guard_distance')::float8;
        IF threshold IS NULL THEN
            EXECUTE format('ALTER DATABASE %I RESET pgallery.lost_query_distance_vector',
                           current_database());
        ELSE
            EXECUTE format('ALTER DATABASE %I SET pgallery.lost_query_distance_vector = %s',
                           current_database(), threshold);
        END IF;
        threshold := (kinds -> 'text' ->> 'guard_distance')::float8;
        IF threshold IS NULL THEN
            EXECUTE format('ALTER DATABASE %I RESET pgallery.lost_query_distance_text',
                           current_database());
        ELSE
            EXECUTE format('ALTER DATABASE %I SET pgallery.lost_query_distance_text = %s',
                           current_database(), threshold);
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'not the database owner: the figures are recorded, the guard '
                     'thresholds are unchanged';
    END;
END
$$;

-- Record a measurement and make it the database's defaults for new sessions: the chosen
-- hnsw.ef_search (only while the default is pgallery's own, as tune_search_defaults()
-- decides: a default set by hand is kept, with a notice) or ivfflat.probes, and the lost-
-- query guard's threshold, pgallery.lost_query_distance (nearest_paintings). Runs as its
-- owner, who owns the database, so that the writer's loads can record; it formats nothing
-- but numbers into its statements. Returns the new row's id.
CREATE OR REPLACE FUNCTION record_index_tuning(
    model text, index_method text, setting text, chosen integer, vectors bigint,
    sample_size integer, k integer, target_mean real, tail_recall real, tail_share real,
    mean real, p5 real, share_below_half real, lost_query_distance real, seconds real,
    measurements jsonb
) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SECURITY DEFINER  -- ALTER DATABASE needs its owner; only numbers are formatted below
AS $$
DECLARE
    id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.tune_search_defaults'));
    INSERT INTO index_tuning (model, index_method, setting, chosen, vectors, sample_size, k,
                              target_mean, tail_recall, tail_share, mean, p5,
                              share_below_half, lost_query_distance, seconds, measurements)
    VALUES (model, index_method, setting, chosen, vectors, sample_size, k, target_mean,
            tail_recall, tail_share, mean, p5, share_below_half, lost_query_distance,
            seconds, measurements)
    RETURNING tuning_id INTO id;
    BEGIN
        IF chosen IS NOT NULL AND setting = 'hnsw.ef_search' THEN
            IF database_setting('pgallery.tuned_ef_search') IS NOT NULL
               AND database_setting('hnsw.ef_search')
                   IS NOT DISTINCT FROM database_setting('pgallery.tuned_ef_search') THEN
                EXECUTE format('ALTER DATABASE %I SET hnsw.ef_search = %s',
                               current_database(), chosen::integer);
                EXECUTE format('ALTER DATABASE %I SET pgallery.tuned_ef_search = %s',
                               current_database(), chosen::integer);
            ELSE
                RAISE NOTICE 'hnsw.ef_search was set by hand for this database: kept '
                             '(the measurement suggests %)', chosen;
            END IF;
        ELSIF chosen IS NOT NULL AND setting = 'ivfflat.probes' THEN
            EXECUTE format('ALTER DATABASE %I SET ivfflat.probes = %s',
                           current_database(), chosen::integer);
        END IF;
        IF lost_query_distance IS NOT NULL THEN
            EXECUTE format('ALTER DATABASE %I SET pgallery.lost_query_distance = %s',
                           current_database(), lost_query_distance::float8);
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'not the database owner: the measurement is recorded, the defaults '
                     'are unchanged';
    END;
    RETURN id;
END
$$;

-- ==== 78_compact_vectors.sql

-- painting_embedding_half follows painting_embedding (table: incremental/0013): one
-- statement-level trigger per kind of write, so a bulk load's batch costs one INSERT ...
-- SELECT over its transition table, not a trigger call per row. Deletes cascade by the
-- foreign key.
CREATE OR REPLACE FUNCTION copy_compact_vectors() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO painting_embedding_half AS h (painting_id, model, embedding)
    SELECT n.painting_id, n.model, l2_normalize(n.embedding)::halfvec(1024)
    FROM changed_rows n
    ON CONFLICT (painting_id, model) DO UPDATE SET embedding = excluded.embedding
    WHERE h.embedding IS DISTINCT FROM excluded.embedding;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER painting_embedding_half_insert
    AFTER INSERT ON painting_embedding
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_compact_vectors();

CREATE OR REPLACE TRIGGER painting_embedding_half_update
    AFTER UPDATE ON painting_embedding
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_compact_vectors();

-- ==== 80_restore_hnsw_index.sql

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
SECURITY DEFINER  -- an index needs the table's owner; it builds only the fixed one below
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
    -- the baseline's shape (incremental/0012_baseline.sql): nearest_paintings orders by it
    CREATE INDEX painting_embedding_hnsw ON painting_embedding
        USING hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)
        WITH (m = 16, ef_construction = 64);
END
$$;

-- ==== 99_privileges.sql

-- The privileges step, last in the layer: who may EXECUTE each routine of the layer, read
-- from the catalog rather than listed by name, so a new function cannot ship without them
-- and every signature of a name is covered (pg_get_function_identity_arguments).
--
-- The rule, from each routine's own properties:
--   STABLE or IMMUTABLE functions  pgallery_reader (and so pgallery_writer, its member).
--                                  PostgreSQL refuses writes in them, so a reader can run
--                                  every one and change nothing.
--   VOLATILE functions             pgallery_writer: they write (loads, the prompt cache,
--                                  models, settings).
--   procedures                     they do DDL (indexes), which only the owner may:
--                                  pgallery_writer for those that run as their owner
--                                  (SECURITY DEFINER), nobody else for the rest.
--   PUBLIC                         nothing: every routine of the layer is revoked from it.
-- SECURITY DEFINER is declared in each definition (CREATE OR REPLACE keeps it that way).
-- Those routines read what the reader may not (vectors, the prompt cache) or need the
-- owner for DDL; this step refuses to finish unless each one pins search_path with
-- pg_temp last, so no temporary object can shadow what it calls (CVE-2018-1058).
--
-- The layer's routine names come from the installer (cli/pgallery/migrations.py sets
-- pgallery.layer_routines to the names the layer's files create); routines outside the
-- layer (parse_year_range and prompt_key, which generated columns use, and anything else
-- in the schema) are left as they are.
DO $$
DECLARE
    routine record;
    audience text;
BEGIN
    FOR routine IN
        SELECT p.oid, p.proname, p.prokind, p.provolatile, p.prosecdef, p.proconfig,
               CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END AS kind,
               pg_catalog.pg_get_function_identity_arguments(p.oid) AS arguments
        FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname = ANY (string_to_array(
                  current_setting('pgallery.layer_routines', true), ','))
        ORDER BY p.proname, arguments
    LOOP
        IF routine.prosecdef AND NOT EXISTS (
               SELECT FROM unnest(routine.proconfig) AS c
               WHERE c LIKE 'search_path=%' AND c LIKE '%pg\_temp') THEN
            RAISE EXCEPTION 'SECURITY DEFINER routine %(%) must SET search_path FROM CURRENT',
                            routine.proname, routine.arguments;
        END IF;
        audience := CASE WHEN routine.prokind = 'f' AND routine.provolatile IN ('s', 'i')
                              THEN 'pgallery_reader'
                         WHEN routine.prokind = 'f' OR routine.prosecdef
                              THEN 'pgallery_writer' END;
        -- names and argument types come from the catalog, quoted by format's %I / as
        -- pg_get_function_identity_arguments prints them
        EXECUTE format('REVOKE ALL ON %s %I(%s) FROM PUBLIC',
                       routine.kind, routine.proname, routine.arguments);
        IF audience IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON %s %I(%s) TO %I',
                           routine.kind, routine.proname, routine.arguments, audience);
        END IF;
    END LOOP;
END
$$;
