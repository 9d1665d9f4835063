-- The replaceable layer exactly as revision 0017 shipped it: sql/idempotent/ at 0017,
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
-- Callers pass the row as ROW(p.*)::painting, not p: on Citus a shard's query names its
-- own table (painting_102008), whose row type is not painting, while the columns as a
-- painting mean the same everywhere; on a single server the planner inlines either alike.
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

-- Is `rel` sharded by Citus (a hash-distributed table)? False on a server without Citus,
-- whose catalog is then missing (hence EXECUTE: a plain query would not even plan there).
-- The search functions take their Citus branches on it (docs/scale-out.md).
CREATE OR REPLACE FUNCTION distributed_table(rel regclass) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    sharded boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition'
                ' WHERE logicalrelid = $1 AND partmethod = ''h'')'
           INTO sharded
           USING rel;
    END IF;
    RETURN sharded;
END
$$;

-- A search's recall settings for the shards' own index scans. On a Citus coordinator
-- set_config() changes the coordinator's session only, while each shard is scanned in a
-- worker's session: a SET LOCAL under citus.propagate_set_commands = 'local' is sent to
-- every worker connection of the transaction, and to those it opens later, until the
-- transaction ends. SET is refused inside a STABLE function, hence this VOLATILE one, which
-- nearest_paintings and near_duplicates call; their SET clauses restore the coordinator's
-- own values when they return (the workers keep these to the end of the transaction, and
-- the next search sets its own). The values are integers, formatted as such.
CREATE OR REPLACE FUNCTION shard_search_settings(ef_search integer, probes integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM set_config('citus.propagate_set_commands', 'local', true);
    -- A shard holds a fraction of the vectors, and on a small one the planner prefers to
    -- sort them all: the index scan is what the search asks for (an exact path's sort
    -- still runs: there is no other plan for its ORDER BY ... + 0).
    EXECUTE 'SET LOCAL enable_sort = off';
    EXECUTE format('SET LOCAL hnsw.ef_search = %s', ef_search);
    EXECUTE format('SET LOCAL ivfflat.probes = %s', probes);
    EXECUTE 'SET LOCAL hnsw.iterative_scan = relaxed_order';
    EXECUTE 'SET LOCAL ivfflat.iterative_scan = relaxed_order';
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
    EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM painting p'
            ' WHERE painting_matches(ROW(p.*)::painting, $1)'
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
    -- On a Citus coordinator each shard's scan runs on a worker (docs/scale-out.md): the
    -- recall settings go to the workers too, and no statement uses a generic plan.
    sharded boolean := distributed_table('painting_embedding');
BEGIN
    -- pgvector accepts hnsw.ef_search up to 1000; beyond, the iterative scan supplies rows
    PERFORM set_config('hnsw.ef_search', least(greatest(r.ef_search, k), 1000)::text, true),
            set_config('ivfflat.probes', r.probes::text, true);
    IF sharded THEN
        PERFORM shard_search_settings(least(greatest(r.ef_search, k), 1000), r.probes);
    END IF;

    IF NOT has_filters(r) THEN
        IF NOT exact THEN
            -- ORDER BY ... <=> qh LIMIT k on the embeddings alone: the shape the
            -- HNSW/IVFFlat index answers; the k paintings are joined afterwards. The
            -- relaxed iterative scan may return rows slightly out of order, hence the sort
            -- when the page is assembled. The page is kept in a variable: if it comes back
            -- short, the exact path below replaces it.
            -- One cached generic plan (planning it per call costs more than the search:
            -- with LIMIT k unknown the planner would keep re-planning), pinned to the
            -- index scan and a nested-loop join of the k rows. Citus cannot plan a
            -- multi-shard statement generically: there each call is planned with its
            -- values, which also sends the shards the query vector as a constant.
            PERFORM set_config('enable_sort', 'off', true),
                    set_config('enable_hashjoin', 'off', true),
                    set_config('enable_mergejoin', 'off', true),
                    set_config('plan_cache_mode', CASE WHEN sharded THEN 'force_custom_plan'
                                                       ELSE 'force_generic_plan' END, true);
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
                WHERE painting_matches(ROW(p.*)::painting, r)
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
                    AND painting_matches(ROW(p.*)::painting, r)
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
            IF sharded THEN
                PERFORM shard_search_settings(wider, least(32768, 4 * r.probes));
            END IF;
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
              AND painting_matches(ROW(p.*)::painting, r)
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
              AND painting_matches(ROW(p.*)::painting, r)
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
    -- a plain outer join on the key (one vector per painting and model), not a lateral
    -- one: Citus joins the fused rows to the shards so, never laterally
    SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
               p.painting_type, p.school, p.timeframe, p.date,
               e.embedding <=> q, 1 - (e.embedding <=> q),
               f.rrf_score::double precision)::search_result
    FROM fused f
    JOIN painting p ON p.painting_id = f.painting_id
    LEFT JOIN painting_embedding e
           ON e.painting_id = f.painting_id AND e.model = m.name AND q IS NOT NULL
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
-- colours ('#rrggbb[:weight]', as search_by_colour takes them) mix a palette term in:
-- the composed vector's colour_candidates() nearest paintings (under the filters) are
-- ranked by (V * similarity + C * colour score) / (V + C), V the sum of the other terms'
-- |weights| and C of the colours' weights (so '@a.jpg + #1e3a8a' weighs them equally);
-- similarity stays the vector's, score is the mix. Colours alone are search_by_colour.
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
    colours text[] DEFAULT NULL,
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
    c record;                       -- the colours (colour_terms), when there are some
    vector_total float8;
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

    IF colours IS NOT NULL THEN
        c := colour_terms(colours);
        IF cardinality(term_vector) = 0 THEN
            RETURN QUERY SELECT * FROM colour_page(c.lab, c.weights, r);
            RETURN;
        END IF;
    END IF;
    IF cardinality(term_vector) = 0 THEN
        RAISE EXCEPTION 'the query has no terms: give paintings, prompts, vectors or colours'
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
    IF colours IS NOT NULL THEN
        -- The vector's nearest candidates, the named paintings left out, scored for the
        -- colours and ranked by the mix (see the top of this file).
        wide := r;
        wide.k := least(10000, colour_candidates(r.page * r.k) + cardinality(named_ids));
        wide.page := 1;
        wide.min_similarity := NULL;
        wide.order_by := 'similarity';
        vector_total := (SELECT sum(abs(x)) FROM unnest(term_weight) AS t(x));
        RETURN QUERY SELECT * FROM finished_page(ARRAY(
            WITH near AS MATERIALIZED (
                SELECT * FROM nearest_paintings(q, wide, named_ids[1]) AS n
                WHERE n.painting_id <> ALL (named_ids)),
            scored AS (
                SELECT * FROM colour_scores(c.lab, c.weights,
                                            ARRAY(SELECT near.painting_id FROM near)))
            SELECT ROW(n.painting_id, n.image_file, n.title, n.author, n.technique,
                       n.painting_type, n.school, n.timeframe, n.date, n.distance,
                       n.similarity,
                       (vector_total * n.similarity + c.total * coalesce(s.score, 0))
                       / (vector_total + c.total))::search_result
            FROM near AS n LEFT JOIN scored AS s ON s.painting_id = n.painting_id
            ORDER BY (vector_total * n.similarity + c.total * coalesce(s.score, 0)) DESC,
                     n.painting_id
            OFFSET (r.page - 1) * r.k LIMIT r.k), r);
        RETURN;
    END IF;
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
    a_id bigint;              -- (Citus) the painting whose neighbours are searched
    a_embedding vector;
    found bigint[];
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

    IF NOT distributed_table('painting_embedding') THEN
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
              AND painting_matches(ROW(p.*)::painting, r)
            ORDER BY l2_normalize(e.embedding)::halfvec(1024)
                     <=> l2_normalize(a.embedding)::halfvec(1024)
            LIMIT neighbours
        ) AS nb
        WHERE a.model = model_name
          AND painting_matches(ROW(pa.*)::painting, r)
          AND nb.score >= threshold;
    ELSE
        -- On Citus each painting's neighbours may be on any shard, and Citus cannot run
        -- a lateral join over two shardings: one nearest-neighbour search per painting,
        -- each sent to every shard (with this call's ef_search on the workers).
        PERFORM shard_search_settings(
            least(greatest(coalesce(near_duplicates.ef_search, 20), neighbours), 1000), 1);
        FOR a_id, a_embedding IN
            SELECT a.painting_id, a.embedding
            FROM painting_embedding a
            JOIN painting pa ON pa.painting_id = a.painting_id
            WHERE a.model = model_name AND painting_matches(ROW(pa.*)::painting, r)
            ORDER BY a.painting_id
        LOOP
            SELECT array_agg(nb.painting_id) INTO found
            FROM (
                SELECT e.painting_id,
                       1 - (duplicate_signature(model_name, e.embedding)
                            <=> duplicate_signature(model_name, a_embedding)) AS score
                FROM painting_embedding e
                JOIN painting p ON p.painting_id = e.painting_id
                WHERE e.model = model_name
                  AND e.painting_id <> a_id
                  AND painting_matches(ROW(p.*)::painting, r)
                ORDER BY l2_normalize(e.embedding)::halfvec(1024)
                         <=> l2_normalize(a_embedding)::halfvec(1024)
                LIMIT neighbours
            ) AS nb
            WHERE nb.score >= threshold;
            IF found IS NOT NULL THEN
                edge_a := edge_a || array_fill(a_id, ARRAY[cardinality(found)]);
                edge_b := edge_b || found;
            END IF;
        END LOOP;
    END IF;
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

-- ==== 26_search_by_colour.sql

-- Search by colour: paintings whose palettes (table painting_palette, revision 0016) hold
-- the colours asked, in the shares asked.
--
--   SELECT title, author, similarity FROM search_by_colour(ARRAY['#1e3a8a', '#d4af37']);
--   SELECT * FROM search_by_colour(ARRAY['#1e3a8a:3', '#d4af37:1'], k => 5,
--                                  school => 'italian');
--
-- The ranking (chosen by measurement: bench/colour-search.md): each asked
-- colour q with weight w (the weights normalised to sum 1: the shares asked for) is
-- covered by the palette colours p near it, each counting its share s by how near it is,
-- s * exp(-dE(q, p)^2 / (2 * 20^2)) with dE the CIE76 distance in Lab; the score is
-- sum over q of min(w, coverage of q), 1 when the painting has every colour in at least
-- the share asked. A painting all blue answers '#1e3a8a' with 1 but blue and gold with
-- 0.5; a 5% accent of gold adds only 0.05.

-- sRGB 0..255 to CIE Lab (D65): the formulas of cli/pgallery/palette.py (the tests hold
-- the two to 0.001).
CREATE OR REPLACE FUNCTION srgb_to_lab(r float8, g float8, b float8) RETURNS real[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    c float8[] := ARRAY[r, g, b];
    f float8[] := ARRAY[0, 0, 0]::float8[];
BEGIN
    FOR i IN 1..3 LOOP           -- the sRGB transfer curve undone
        c[i] := c[i] / 255.0;
        c[i] := CASE WHEN c[i] <= 0.04045 THEN c[i] / 12.92
                     ELSE ((c[i] + 0.055) / 1.055) ^ 2.4 END;
    END LOOP;
    c := ARRAY[(0.4124564 * c[1] + 0.3575761 * c[2] + 0.1804375 * c[3]) / 0.95047,  -- XYZ
               0.2126729 * c[1] + 0.7151522 * c[2] + 0.0721750 * c[3],             -- / white
               (0.0193339 * c[1] + 0.1191920 * c[2] + 0.9503041 * c[3]) / 1.08883];
    FOR i IN 1..3 LOOP
        f[i] := CASE WHEN c[i] > 216.0 / 24389 THEN cbrt(c[i])
                     ELSE (24389.0 / 27 * c[i] + 16) / 116 END;
    END LOOP;
    RETURN ARRAY[116 * f[2] - 16, 500 * (f[1] - f[2]), 200 * (f[2] - f[3])]::real[];
END
$$;

-- '#rrggbb' to Lab; PGA06 for anything else.
CREATE OR REPLACE FUNCTION colour_lab(hex text) RETURNS real[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF hex IS NULL OR hex !~ '^#[0-9a-fA-F]{6}$' THEN
        RAISE EXCEPTION 'not a colour: %', quote_nullable(left(hex, 40))
            USING ERRCODE = 'PGA06',
                  HINT = 'write colours as ''#rrggbb'', e.g. ''#1e3a8a'', optionally with a '
                         'weight: ''#1e3a8a:0.7''';
    END IF;
    RETURN srgb_to_lab(('x' || substr(hex, 2, 2))::bit(8)::integer,
                       ('x' || substr(hex, 4, 2))::bit(8)::integer,
                       ('x' || substr(hex, 6, 2))::bit(8)::integer);
END
$$;

-- The 216 anchor colours of the histograms (216 x 3, Lab): the sRGB cube at six levels a
-- channel (0, 51, ..., 255; red slowest, blue fastest), about 10-25 Delta E apart. Written
-- out (srgb_to_lab of each, to 4 places) because computing them cost more than the
-- histogram itself; tests/test_search_by_colour.py checks them against srgb_to_lab.
CREATE OR REPLACE FUNCTION colour_anchors() RETURNS real[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY[
    [0.0000, 0.0000, 0.0000], [2.1583, 15.1664, -30.0633], [8.6449, 40.4077, -55.0387], [16.9846, 54.0814, -73.6635],
    [24.8217, 66.9311, -91.1658], [32.2970, 79.1875, -107.8602], [17.3084, -27.6726, 24.1982], [18.3933, -15.4405, -4.5374],
    [21.3066, 6.8184, -34.2137], [25.7630, 28.8847, -59.0930], [31.1739, 48.0465, -80.5831], [37.0871, 64.6923, -99.8656],
    [36.9336, -43.9772, 42.4446], [37.3736, -38.4574, 21.7185], [38.6576, -24.5380, -7.2108], [40.8984, -5.3478, -34.6705],
    [44.0318, 15.2702, -59.5177], [47.9048, 35.1968, -82.0061], [54.8460, -58.8588, 56.8076], [55.0928, -55.6867, 42.6724],
    [55.8265, -46.8786, 17.3761], [57.1533, -32.8415, -9.6509], [59.1028, -15.4004, -35.5477], [61.6529, 3.5681, -59.7589],
    [71.6789, -72.8435, 70.3050], [71.8403, -70.7514, 60.1931], [72.3232, -64.7228, 38.9271], [73.2081, -54.4631, 13.6549],
    [74.5345, -40.6446, -11.9440], [76.3143, -24.3549, -36.6764], [87.7347, -86.1827, 83.1793], [87.8501, -84.6813, 75.6089],
    [88.1963, -80.2794, 57.9270], [88.8347, -72.5364, 34.9410], [89.8005, -61.6246, 10.3770], [91.1132, -48.0875, -14.1312],
    [6.3596, 25.1699, 10.0494], [8.5071, 31.5423, -19.5304], [13.6090, 42.7856, -46.6444], [20.0565, 55.2909, -68.4589],
    [26.9112, 67.6746, -87.6233], [33.8190, 79.7004, -105.2790], [20.3282, -6.9207, 28.4892], [21.2467, -0.0000, 0.0000],
    [23.7721, 15.2467, -30.1241], [27.7657, 33.1558, -55.7313], [32.7657, 50.3215, -77.8985], [38.3563, 66.0112, -97.7201],
    [38.2099, -33.2972, 43.9962], [38.6297, -28.7856, 23.5684], [39.8572, -17.0461, -5.2945], [42.0081, -0.1517, -32.8460],
    [45.0315, 18.7111, -57.8530], [48.7895, 37.4663, -80.5232], [55.5684, -52.4919, 57.6881], [55.8103, -49.5995, 43.6647],
    [56.5296, -41.5085, 18.4503], [57.8316, -28.4540, -8.5666], [59.7467, -12.0035, -34.4950], [62.2557, 6.1217, -58.7614],
    [72.1528, -68.5863, 70.8831], [72.3125, -66.5970, 60.8194], [72.7903, -60.8513, 39.6105], [73.6661, -51.0313, 14.3648],
    [74.9792, -37.7309, -11.2327], [76.7422, -21.9578, -35.9796], [88.0740, -83.1081, 83.5934], [88.1887, -81.6524, 76.0463],
    [88.5327, -77.3807, 58.4011], [89.1669, -69.8536, 35.4401], [90.1267, -59.2199, 10.8866], [91.4316, -45.9898, -13.6220],
    [19.3321, 40.8694, 29.6568], [20.3011, 43.4701, -0.4095], [22.9466, 50.1268, -31.0376], [27.0876, 59.6120, -56.6128],
    [32.2219, 70.3676, -78.6476], [37.9199, 81.5126, -98.3375], [27.2784, 19.6299, 37.7134], [27.9322, 22.7967, 10.4010],
    [29.7933, 31.0291, -20.2253], [32.9025, 42.8831, -47.1486], [37.0249, 56.2135, -70.7349], [41.8616, 69.7024, -91.8052],
    [41.7325, -10.9984, 48.2101], [42.1031, -8.0543, 28.6223], [43.1923, -0.0000, 0.0000], [45.1190, 12.5129, -27.7496],
    [47.8619, 27.6107, -53.1504], [51.3192, 43.6093, -76.2893], [57.6618, -36.5109, 60.2209], [57.8902, -34.2174, 46.5220],
    [58.5701, -27.7005, 21.5543], [59.8035, -16.8940, -5.4220], [61.6239, -2.8222, -31.4318], [64.0183, 13.1836, -55.8482],
    [73.5511, -57.0217, 72.5821], [73.7059, -55.2867, 62.6602], [74.1690, -50.2472, 41.6220], [75.0186, -41.5420, 16.4569],
    [76.2938, -29.5824, -9.1332], [78.0083, -15.1774, -33.9197], [89.0834, -74.4253, 84.8222], [89.1958, -73.0912, 77.3445],
    [89.5333, -69.1670, 59.8089], [90.1557, -62.2203, 36.9233], [91.0980, -52.3416, 12.4017], [92.3796, -39.9543, -12.1068],
    [31.2882, 54.6994, 45.1361], [31.8378, 56.1908, 17.3396], [33.4218, 60.3578, -13.8805], [36.1259, 67.0895, -41.5406],
    [39.8032, 75.6477, -65.9116], [44.2216, 85.2715, -87.7125], [36.2565, 40.8265, 48.0684], [36.7078, 42.5297, 23.5341],
    [38.0233, 47.2980, -6.9216], [40.3139, 55.0103, -34.8771], [43.5075, 64.7886, -59.8916], [47.4428, 75.6968, -82.4218],
    [47.3355, 13.5465, 54.7294], [47.6439, 15.3715, 36.4979], [48.5557, 20.5545, 8.4100], [50.1872, 29.1405, -19.5055],
    [52.5475, 40.3098, -45.4010], [55.5778, 53.0154, -69.1842], [61.2688, -14.7202, 64.5241], [61.4765, -13.0520, 51.3828],
    [62.0957, -8.2336, 26.8706], [63.2226, -0.0000, 0.0000], [64.8940, 11.1441, -26.1148], [67.1064, 24.3444, -50.7576],
    [76.0431, -39.2791, 75.5858], [76.1897, -37.8728, 65.9155], [76.6284, -33.7587, 45.1879], [77.4340, -26.5522, 20.1772],
    [78.6454, -16.4594, -5.3887], [80.2779, -4.0336, -30.2351], [90.9120, -60.1924, 87.0371], [91.0207, -59.0359, 79.6845],
    [91.3468, -55.6226, 62.3491], [91.9485, -49.5395, 39.6036], [92.8601, -40.8038, 15.1441], [94.1013, -29.7189, -9.3602],
    [42.5239, 67.6959, 56.8016], [42.8846, 68.6788, 33.3463], [43.9458, 71.5205, 2.9072], [45.8266, 76.3911, -25.5929],
    [48.5109, 83.0298, -51.4106], [51.9042, 90.9947, -74.8342], [45.9195, 58.0505, 58.1612], [46.2421, 59.1214, 37.1164],
    [47.1944, 62.2183, 7.5595], [48.8943, 67.5262, -20.8544], [51.3445, 74.7528, -46.8896], [54.4769, 83.3984, -70.6605],
    [54.3900, 35.7223, 62.6744], [54.6400, 36.9064, 46.1234], [55.3829, 40.3450, 18.9207], [56.7259, 46.2825, -8.9842],
    [58.6975, 54.4370, -35.3009], [61.2739, 64.2639, -59.7269], [66.2306, 8.3089, 70.3282], [66.4141, 9.4974, 57.9432],
    [66.9620, 12.9737, 34.1102], [67.9630, 19.0601, 7.4528], [69.4559, 27.5783, -18.7407], [71.4464, 38.0577, -43.6330],
    [79.6278, -18.2177, 79.8549], [79.7636, -17.1229, 70.5421], [80.1704, -13.8981, 50.2738], [80.9184, -8.1733, 25.5079],
    [82.0458, -0.0000, 0.0000], [83.5696, 10.2960, -24.9100], [93.6053, -41.9450, 90.2742], [93.7087, -40.9823, 83.1041],
    [94.0191, -38.1305, 66.0663], [94.5922, -33.0105, 43.5351], [95.4612, -25.5772, 19.1762], [96.6461, -16.0162, -5.3125],
    [53.2408, 80.0925, 67.2032], [53.4991, 80.7976, 47.8294], [54.2663, 82.8691, 18.8753], [55.6510, 86.5286, -9.7191],
    [57.6798, 91.7227, -36.3083], [60.3242, 98.2343, -60.8249], [55.7203, 72.9924, 68.1459], [55.9611, 73.7390, 50.2562],
    [56.6774, 75.9325, 22.1168], [57.9743, 79.8070, -6.2555], [59.8823, 85.3033, -32.8722], [62.3827, 92.1859, -57.5364],
    [62.3125, 55.0002, 71.3267], [62.5147, 55.8207, 56.5566], [63.1178, 58.2343, 30.5552], [64.2163, 62.5078, 2.8993],
    [65.8478, 68.5880, -23.6664], [68.0110, 76.2213, -48.6138], [72.2607, 30.1654, 77.2245], [72.4200, 31.0261, 65.7285],
    [72.8966, 33.5660, 42.7837], [73.7704, 38.0907, 16.4777], [75.0805, 44.5847, -9.7205], [76.8397, 52.8194, -34.8293],
    [84.1996, 3.6798, 85.2175], [84.3233, 4.5226, 76.3509], [84.6941, 7.0187, 56.6848], [85.3772, 11.4993, 32.2657],
    [86.4090, 18.0019, 6.8689], [87.8084, 26.3618, -18.0860], [97.1393, -21.5537, 94.4780], [97.2363, -20.7698, 87.5437],
    [97.5277, -18.4401, 70.9001], [98.0662, -14.2287, 48.6633], [98.8837, -8.0512, 24.4524], [100.0000, -0.0000, 0.0000]]::real[];

-- A palette (n x 3 Lab, n shares or weights) as a unit vector over the anchors: anchor
-- a gets sum over colours c of share(c) * exp(-dE(a, c)^2 / (2 * 20^2)). Two palettes'
-- cosine is then a smoothed share-weighted colour overlap: what the HNSW index on
-- painting_palette.histogram ranks candidates by (bench/colour-search.md says how many it
-- takes for the exact ranking's top rows to be among them). PL/pgSQL, whose plans last the
-- session, where a SQL function's body is planned again at every call.
CREATE OR REPLACE FUNCTION palette_histogram(lab real[], shares real[]) RETURNS vector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    anchors real[] := colour_anchors();
    h real[] := array_fill(0::real, ARRAY[216]);
    weight float8;
BEGIN
    FOR i IN 1..216 LOOP
        weight := 0;
        FOR j IN 1..cardinality(shares) LOOP
            weight := weight + shares[j] * exp(-((anchors[i][1] - lab[j][1]) ^ 2
                                                 + (anchors[i][2] - lab[j][2]) ^ 2
                                                 + (anchors[i][3] - lab[j][3]) ^ 2) / 800.0);
        END LOOP;
        h[i] := weight;
    END LOOP;
    RETURN l2_normalize(h::vector);
END
$$;

-- The score (see the top of this file) of each painting in ``candidates``: how much of
-- each asked colour's weight its palette covers with colours near it, summed; 0..1.
-- Set-based, one statement for all the candidates (a scalar function called per painting
-- cost ten times more: bench/colour-search.md). PL/pgSQL, not an SQL function: Citus
-- cannot plan an SQL function's statement over its tables when the caller passes
-- parameters ("parameterized queries for SQL functions referencing distributed tables").
CREATE OR REPLACE FUNCTION colour_scores(q_lab real[], q_weights real[], candidates bigint[])
RETURNS TABLE (painting_id bigint, score float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT c.painting_id, sum(least(q_weights[c.i], c.covered))
    FROM (SELECT pp.painting_id, q.i,
                 sum(pp.shares[j] * exp(-((q_lab[q.i][1] - pp.lab[j][1]) ^ 2
                                          + (q_lab[q.i][2] - pp.lab[j][2]) ^ 2
                                          + (q_lab[q.i][3] - pp.lab[j][3]) ^ 2) / 800.0))
                     AS covered
          FROM unnest(candidates) AS wanted(painting_id)
          JOIN painting_palette pp ON pp.painting_id = wanted.painting_id
          CROSS JOIN generate_series(1, cardinality(q_weights)) AS q(i)
          CROSS JOIN LATERAL generate_subscripts(pp.shares, 1) AS j
          GROUP BY pp.painting_id, q.i) AS c
    GROUP BY c.painting_id;
END
$$;

-- The histogram follows the colours: computed for a row written without one (a psql
-- INSERT), and again when an UPDATE changes the colours but not the histogram. The loader
-- sends it computed (pgallery.palette.histogram, held equal to palette_histogram by the
-- tests): a bulk write then costs no PL/pgSQL per row.
CREATE OR REPLACE FUNCTION fill_palette_histogram() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF NEW.histogram IS NULL
       OR TG_OP = 'UPDATE' AND NEW.histogram IS NOT DISTINCT FROM OLD.histogram
          AND (NEW.lab IS DISTINCT FROM OLD.lab OR NEW.shares IS DISTINCT FROM OLD.shares)
    THEN
        NEW.histogram := palette_histogram(NEW.lab, NEW.shares);
    END IF;
    RETURN NEW;
END
$$;

-- On Citus painting_palette is a reference table, which takes no trigger: there the
-- histogram is the writer's to send, as pgallery's loader and backfill always do. The
-- statement starts its line so that the migration runner finds and drops it as it does
-- any trigger of the layer.
DO $$
DECLARE
    on_citus boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition'
                ' WHERE logicalrelid = ''painting_palette''::regclass)' INTO on_citus;
    END IF;
    IF NOT on_citus THEN
CREATE OR REPLACE TRIGGER painting_palette_histogram
    BEFORE INSERT OR UPDATE ON painting_palette
    FOR EACH ROW EXECUTE FUNCTION fill_palette_histogram();
    END IF;
END
$$;

-- How many candidates the index gives for the rows up to n of a ranking, to be re-ranked
-- exactly: the setting pgallery.colour_candidates (SET it per session, or ALTER DATABASE),
-- else 800, and never fewer than 8 * n. At 100k synthetic palettes the exact top 10 was
-- among the first 400 for 0.95 of its rows on average (p5 0.70), among 800 for 0.98
-- (p5 0.90, no query under 0.5) and among 1600 for 0.997 (bench/colour-search.md); the
-- re-ranking costs about linearly in the candidates.
CREATE OR REPLACE FUNCTION colour_candidates(n integer) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
RETURN least(100000, greatest(
    coalesce(nullif(current_setting('pgallery.colour_candidates', true), '')::integer, 800),
    8 * n));

-- Colours as the search functions take them, 1 to 5 of '#rrggbb' each optionally with
-- ':weight' (above 0, at most 1000; default 1): their Lab values, their weights
-- normalised to sum 1, and the sum of the weights as given (what a composed query weighs
-- the colours by against its other terms). PGA06 for anything else.
CREATE OR REPLACE FUNCTION colour_terms(colours text[], OUT lab real[], OUT weights real[],
                                        OUT total float8)
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    term text;
    weight float8;
BEGIN
    IF colours IS NULL OR cardinality(colours) = 0 OR cardinality(colours) > 5 THEN
        RAISE EXCEPTION 'give 1 to 5 colours, got %', coalesce(cardinality(colours), 0)
            USING ERRCODE = 'PGA06',
                  HINT = 'e.g. search_by_colour(ARRAY[''#1e3a8a'', ''#d4af37''])';
    END IF;
    FOREACH term IN ARRAY colours LOOP
        IF term IS NULL OR term !~ '^#[0-9a-fA-F]{6}(:[0-9]*\.?[0-9]+)?$' THEN
            PERFORM colour_lab(term);          -- raises PGA06 naming the term
        END IF;
        weight := coalesce(nullif(split_part(term, ':', 2), '')::float8, 1);
        IF weight <= 0 OR weight > 1000 THEN
            RAISE EXCEPTION 'the weight of % must be above 0 and at most 1000',
                            quote_literal(term)
                USING ERRCODE = 'PGA06';
        END IF;
        lab := lab || ARRAY[colour_lab(split_part(term, ':', 1))];
        weights := weights || weight::real;
    END LOOP;
    total := (SELECT sum(w) FROM unnest(weights) AS t(w));
    weights := ARRAY(SELECT w / total FROM unnest(weights) WITH ORDINALITY AS t(w, n)
                     ORDER BY n);
END
$$;

-- One page of the colour ranking for a checked request (search_by_colour's engine; a
-- composed query of colours alone comes here too).
--
-- How: the asked colours become a histogram (palette_histogram) and the HNSW index on
-- painting_palette.histogram gives the candidates nearest to it, filters checked as the
-- graph is walked (pgvector's iterative scan); the candidates (colour_candidates rows,
-- growing with the page) are re-ranked exactly by colour_scores. When filters leave
-- few paintings (fewer than colour_candidates * 4), or r.exact, all of them are scored;
-- when they leave fewer than 25 times the candidates, the candidates are the matching
-- paintings' nearest histograms, found by reading them all (no index).
CREATE OR REPLACE FUNCTION colour_page(q_lab real[], q_weights real[], r search_request)
RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET enable_sort = on
SET plan_cache_mode = auto
AS $$
DECLARE
    skip integer := (r.page - 1) * r.k;
    wanted integer := colour_candidates(skip + r.k);
    q_hist vector := palette_histogram(q_lab, q_weights);
    exact boolean := r.exact;
    matching bigint;
    candidates bigint[];
BEGIN
    IF NOT exact AND has_filters(r) THEN
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
        SELECT count(*) INTO matching FROM (
            SELECT 1 FROM painting p WHERE painting_matches(ROW(p.*)::painting, r) LIMIT 25 * wanted) AS bounded;
        exact := matching < 4 * wanted;
    END IF;
    IF NOT exact AND matching < 25 * wanted THEN
        -- filters that leave a few thousand: their histograms read through the metadata
        -- indexes and the nearest taken by a full sort, four times faster at 10k of 100k
        -- than the iterative scan, which walks ten times the candidates to find them
        -- (bench/colour-search.md), and exact where the index is approximate
        candidates := ARRAY(
            SELECT pp.painting_id
            FROM painting p
            JOIN painting_palette pp ON pp.painting_id = p.painting_id
            WHERE painting_matches(ROW(p.*)::painting, r)
            ORDER BY (pp.histogram <=> q_hist) + 0      -- "+ 0": never the index
            LIMIT wanted);
    ELSIF NOT exact THEN
        -- candidates: the histograms nearest to the query's, filters checked on the way
        PERFORM set_config('hnsw.ef_search', least(1000, wanted)::text, true),
                set_config('enable_sort', 'off', true);
        candidates := ARRAY(
            SELECT pp.painting_id
            FROM painting_palette pp
            JOIN painting p ON p.painting_id = pp.painting_id
            WHERE painting_matches(ROW(p.*)::painting, r)
            ORDER BY pp.histogram <=> q_hist
            LIMIT wanted);
        PERFORM set_config('enable_sort', 'on', true);
    ELSE
        -- exact: every matching painting with a palette
        candidates := ARRAY(
            SELECT pp.painting_id
            FROM painting_palette pp
            JOIN painting p ON p.painting_id = pp.painting_id
            WHERE painting_matches(ROW(p.*)::painting, r));
    END IF;
    RETURN QUERY SELECT * FROM finished_page(ARRAY(
        SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
                   p.painting_type, p.school, p.timeframe, p.date,
                   1 - s.score, s.score, s.score)::search_result
        FROM (SELECT c.painting_id, c.score
              FROM colour_scores(q_lab, q_weights, candidates) AS c
              ORDER BY c.score DESC, c.painting_id
              LIMIT r.k OFFSET skip) AS s
        JOIN painting p ON p.painting_id = s.painting_id), r);
END
$$;

-- search_by_colour: the paintings whose palettes best hold the colours asked.
--
-- colours   1 to 5 of '#rrggbb', each optionally ':weight' (relative, default 1)
-- The other parameters are search_by_vector's: the same filters, k, page, min_similarity
-- (on the score, 0..1) and order_by. model is accepted and checked like everywhere (a
-- palette belongs to the image, not to a model); ef_search and probes are not used;
-- exact => true scores every matching painting, without the index.
CREATE OR REPLACE FUNCTION search_by_colour(
    colours text[],
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
AS $$
DECLARE
    r search_request := checked_request(ROW(k, author, technique, school, painting_type, timeframe, year_from, year_to, model, ef_search, probes, exact, min_similarity, order_by, page)::search_request);
    q record := colour_terms(colours);
BEGIN
    RETURN QUERY SELECT * FROM colour_page(q.lab, q.weights, r);
END
$$;

-- ==== 30_prompts.sql

-- The text-prompt embedding cache (table prompt_embedding).
--
--   SELECT prompt_vector('a stormy sea', 'azure-vision/2023-04-15');   -- NULL if not cached
--   SELECT store_prompt_embedding('a stormy sea', '[...]'::vector, 'azure-vision/2023-04-15');

-- The cached vector of a prompt under a model, or NULL. The body is a string, not a
-- RETURN: Citus (14.0 on PostgreSQL 18) fails with a syntax error on a SQL-standard body
-- that reads one of its tables.
CREATE OR REPLACE FUNCTION prompt_vector(prompt text, model text) RETURNS vector
LANGUAGE sql STABLE
SET search_path FROM CURRENT
SECURITY DEFINER  -- the prompt cache is not the reader's to read (99_privileges.sql)
AS $$
    SELECT pe.embedding FROM prompt_embedding pe
    WHERE pe.model = prompt_vector.model
      AND pe.prompt_hash = prompt_key(prompt_vector.prompt)
$$;

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
    -- excluded.created_at is the column's default, now(): Citus refuses a volatile
    -- function in DO UPDATE SET on a reference table
    ON CONFLICT ON CONSTRAINT prompt_embedding_pkey DO UPDATE
        SET embedding = excluded.embedding, created_at = excluded.created_at;
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
    -- read first, not as a subquery of the INSERT: Citus refuses subqueries in an INSERT
    -- into a reference table (the unique index on is_active still settles a race)
    first_model boolean := NOT EXISTS (SELECT 1 FROM embedding_model a WHERE a.is_active);
BEGIN
    INSERT INTO embedding_model AS em (name, dimension, provider, is_active)
    VALUES (register_model.name, register_model.dimension, register_model.provider,
            first_model)
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
    written_ids bigint[];
    embedded_files text[];
    -- the transaction's time, as a value: Citus refuses now() in an ON CONFLICT ... DO
    -- UPDATE SET of a distributed or reference table (it must be IMMUTABLE there)
    stamp timestamptz := now();
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
            updated_at = stamp
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
            embedded_at = stamp
        WHERE pe.embedding IS DISTINCT FROM excluded.embedding
           OR pe.content_hash IS DISTINCT FROM excluded.content_hash
        RETURNING pe.painting_id
    )
    SELECT count(*), array_agg(painting_id) INTO embeddings_written, written_ids FROM written;

    -- The compact copy (painting_embedding_half): a trigger keeps it on a single server; on
    -- Citus, which has no such trigger (78_compact_vectors.sql), it is written here, in the
    -- same transaction, shard by shard (both tables are sharded by painting_id together).
    IF written_ids IS NOT NULL AND distributed_table('painting_embedding') THEN
        INSERT INTO painting_embedding_half AS h (painting_id, model, embedding)
        SELECT e.painting_id, e.model, l2_normalize(e.embedding)::halfvec(1024)
        FROM painting_embedding e
        WHERE e.model = m.name AND e.painting_id = ANY (written_ids)
        ON CONFLICT ON CONSTRAINT painting_embedding_half_pkey DO UPDATE SET embedding = excluded.embedding
        WHERE h.embedding IS DISTINCT FROM excluded.embedding;
    END IF;

    -- an image embedded now is no longer a failure
    -- (the names as a value read first: Citus cannot read a temporary table in a DELETE
    -- on a reference table)
    embedded_files := ARRAY(SELECT s.image_file FROM pg_temp.painting_staging s
                            WHERE s.embedding IS NOT NULL);
    DELETE FROM embedding_failure f
    WHERE f.model = m.name AND f.image_file = ANY (embedded_files);

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

-- On Citus (painting_embedding sharded) there are no such triggers: Citus refuses
-- triggers on a distributed table, and a shard's statement trigger cannot read a
-- transition table; merge_staged_paintings, the one writer of painting_embedding, fills the
-- copy itself there (60_merge_staged_paintings.sql). The statements start their lines so
-- that the migration runner finds and drops them as it does any trigger of the layer.
DO $$
BEGIN
    IF NOT distributed_table('painting_embedding') THEN
CREATE OR REPLACE TRIGGER painting_embedding_half_insert
    AFTER INSERT ON painting_embedding
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_compact_vectors();

CREATE OR REPLACE TRIGGER painting_embedding_half_update
    AFTER UPDATE ON painting_embedding
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_compact_vectors();
    END IF;
END
$$;

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

-- ==== 85_map.sql

-- The map (painting_map, revision 0017): what a viewport shows, and where a painting that
-- arrived after the last full layout goes.

-- The paintings inside a viewport of the map, at most lim of them, those of lowest
-- sample_rank first: a zoomed-out view gets an even sample of the whole collection, a
-- zoomed-in one every painting in it, and whatever the zoom never more than lim rows.
--
--   SELECT image_file, title, x, y
--   FROM map_points(0, 0, 1, 1, lim => 300, school => 'dutch');
--
-- x0, y0, x1, y1   the viewport (the map is the unit square: x, y in [0, 1])
-- lim              the most rows wanted (1..5000)
-- author ... year_to, model   the filters of every search (painting_matches), and whose
--                  map; NULL = no filter, the active model
--
-- How it stays fast (0017_painting_map.sql): each level of ranks has its own band of the
-- one GiST index on tile, and the levels are read from 0 up, each with ORDER BY
-- sample_rank LIMIT (what is still missing). A level holds three times the paintings of
-- the levels before it, so the scan ends within about four times lim rows read, at any
-- zoom. With filters, the walk reads about lim / (the share passing) rows; when fewer
-- paintings match than sqrt(lim * paintings on the map), where the two costs cross, the
-- matching paintings are read first through the metadata indexes instead and joined to
-- the map. The matches are counted up to that bound only (a LIMIT), so a broad filter
-- costs a few thousand rows of a scan that stops early. Statements are planned per call
-- (plan_cache_mode) so that the filters' "IS NULL OR" arms drop out and their indexes
-- can be used.
CREATE OR REPLACE FUNCTION map_points(
    x0 float8, y0 float8, x1 float8, y1 float8,
    lim integer DEFAULT 500,
    author text DEFAULT NULL,
    technique text DEFAULT NULL,
    school text DEFAULT NULL,
    painting_type text DEFAULT NULL,
    timeframe text DEFAULT NULL,
    year_from integer DEFAULT NULL,
    year_to integer DEFAULT NULL,
    model text DEFAULT NULL
) RETURNS TABLE (painting_id bigint, image_file text, title text, x float8, y float8,
                 sample_rank integer)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    r search_request := search_request(
        author => map_points.author, technique => map_points.technique,
        school => map_points.school, painting_type => map_points.painting_type,
        timeframe => map_points.timeframe, year_from => map_points.year_from,
        year_to => map_points.year_to);
    model_name text := (resolve_model(map_points.model)).name;
    filtered boolean := has_filters(r);
    top_level integer;
    crossover integer;
    matching integer;
    got integer := 0;
    n integer;
    bx0 float8 := greatest(x0, 0);
    by0 float8 := greatest(y0, 0);
    bx1 float8 := least(x1, 1);
    by1 float8 := least(y1, 1);
BEGIN
    IF num_nulls(x0, y0, x1, y1) > 0 OR 'NaN' IN (x0, y0, x1, y1) OR x0 > x1 OR y0 > y1 THEN
        RAISE EXCEPTION 'the box must be x0, y0, x1, y1 with x0 <= x1 and y0 <= y1, got %, %, %, %',
                        x0, y0, x1, y1
            USING ERRCODE = 'PGA06';
    END IF;
    IF lim IS NULL OR lim < 1 OR lim > 5000 THEN
        RAISE EXCEPTION 'lim must be between 1 and 5000, got %', coalesce(lim::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    IF r.year_from > r.year_to THEN
        RAISE EXCEPTION 'year_from (%) is after year_to (%)', r.year_from, r.year_to
            USING ERRCODE = 'PGA07';
    END IF;
    IF bx0 > bx1 OR by0 > by1 THEN       -- the box lies outside the map
        RETURN;
    END IF;
    IF filtered THEN
        crossover := ceil(sqrt(lim * greatest(
            (SELECT c.reltuples FROM pg_class c WHERE c.oid = 'painting_map'::regclass), 1)));
        SELECT count(*) INTO matching
        FROM (SELECT FROM painting p WHERE painting_matches(ROW(p.*)::painting, r) LIMIT crossover + 1) AS s;
    END IF;
    IF filtered AND matching <= crossover THEN
        RETURN QUERY
        SELECT m.painting_id, p.image_file, p.title, m.x, m.y, m.sample_rank
        FROM painting p
        JOIN painting_map m ON m.model = model_name AND m.painting_id = p.painting_id
        WHERE painting_matches(ROW(p.*)::painting, r)
          AND m.x BETWEEN bx0 AND bx1 AND m.y BETWEEN by0 AND by1
        ORDER BY m.sample_rank
        LIMIT lim;
        RETURN;
    END IF;
    SELECT m.level INTO top_level
    FROM painting_map m WHERE m.model = model_name
    ORDER BY m.sample_rank DESC LIMIT 1;
    FOR l IN 0 .. coalesce(top_level, -1) LOOP
        RETURN QUERY
        SELECT m.painting_id, p.image_file, p.title, m.x, m.y, m.sample_rank
        FROM painting_map m
        JOIN painting p ON p.painting_id = m.painting_id
        WHERE m.tile <@ box(point(bx0 + 4 * l, by0), point(bx1 + 4 * l, by1))
          AND m.model = model_name
          AND (NOT filtered OR painting_matches(ROW(p.*)::painting, r))
        ORDER BY m.sample_rank
        LIMIT lim - got;
        GET DIAGNOSTICS n = ROW_COUNT;
        got := got + n;
        EXIT WHEN got >= lim;
    END LOOP;
END
$$;

-- Put the paintings of a model that have a vector but no place on its map beside their
-- nearest neighbours already on it (the mean of their positions), leaving every other
-- painting where it is; the next full layout (`pgallery map layout`) places everything
-- afresh. Each new painting takes the next sample_rank, so it shows up at the deepest
-- zoom levels first. Returns how many it placed; 0 when the model has no map yet (a
-- full layout makes the first one).
--
--   SELECT place_on_map();                 -- the active model's new paintings
--   SELECT place_on_map('local-descriptors/v1', neighbours => 5);
--
-- The neighbours come from the HNSW index (the shape nearest_paintings uses) with
-- pgvector's iterative scan, which walks on past paintings not yet on the map.
CREATE OR REPLACE FUNCTION place_on_map(model text DEFAULT NULL, neighbours integer DEFAULT 5)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET hnsw.iterative_scan = relaxed_order
SET hnsw.ef_search = 100
SET enable_sort = off          -- take the vector index even before the first ANALYZE
AS $$
DECLARE
    model_name text := (resolve_model(place_on_map.model)).name;
    next_rank integer;
    placed integer := 0;
    item record;
    px float8;
    py float8;
BEGIN
    IF neighbours IS NULL OR neighbours < 1 OR neighbours > 100 THEN
        RAISE EXCEPTION 'neighbours must be between 1 and 100, got %',
                        coalesce(neighbours::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    -- one placer at a time per database, so that ranks stay a permutation
    PERFORM pg_advisory_xact_lock(hashtext('pgallery.painting_map'));
    SELECT m.sample_rank + 1 INTO next_rank
    FROM painting_map m WHERE m.model = model_name
    ORDER BY m.sample_rank DESC LIMIT 1;
    IF next_rank IS NULL THEN
        RETURN 0;
    END IF;
    FOR item IN
        SELECT e.painting_id, l2_normalize(e.embedding)::halfvec(1024) AS qh
        FROM painting_embedding e
        WHERE e.model = model_name
          AND NOT EXISTS (SELECT FROM painting_map m
                          WHERE m.model = model_name AND m.painting_id = e.painting_id)
        ORDER BY e.painting_id
    LOOP
        SELECT avg(nn.x), avg(nn.y) INTO px, py
        FROM (SELECT m.x, m.y
              FROM painting_embedding e
              JOIN painting_map m ON m.model = model_name AND m.painting_id = e.painting_id
              WHERE e.model = model_name
              ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> item.qh
              LIMIT neighbours) AS nn;
        INSERT INTO painting_map (model, painting_id, x, y, sample_rank, placed_by)
        VALUES (model_name, item.painting_id, px, py, next_rank, 'neighbours');
        next_rank := next_rank + 1;
        placed := placed + 1;
    END LOOP;
    RETURN placed;
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
