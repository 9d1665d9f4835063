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
    -- The second candidate source of queries that are not stored paintings: the lists of
    -- the compact copy's IVFFlat index to read (vector_probes(), 51_vector_probe_index.sql;
    -- NULL or 0: none). Stored paintings keep the graph alone, as they were tuned.
    probes integer;
BEGIN
    IF query_kind <> 'stored' AND NOT sharded AND NOT exact THEN
        probes := vector_probes();
    END IF;
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
            IF probes > 0 THEN
                -- A new vector: the graph's rows up to this page's end and as many from
                -- the probe index (vector_probes() of its lists), re-ranked together by
                -- exact distance (merged_page). The two lose different queries: on
                -- 100,000 clustered rows the graph alone lost 1-4 of 200 new vectors at
                -- any ef_search, the merge none (bench/README.md, section 16).
                PERFORM set_config('ivfflat.probes', probes::text, true);
                SELECT array_agg(ROW(p.painting_id, p.image_file, p.title, p.author,
                                     p.technique, p.painting_type, p.school, p.timeframe,
                                     p.date, m.distance, 1 - m.distance,
                                     1 - m.distance)::search_result
                                 ORDER BY m.distance, m.painting_id)
                INTO page
                FROM merged_page(q, model_name,
                         ARRAY(SELECT g.painting_id FROM painting_embedding g
                               WHERE g.model = model_name
                                 AND g.painting_id IS DISTINCT FROM exclude_painting
                               ORDER BY l2_normalize(g.embedding)::halfvec(1024) <=> qh
                               LIMIT skip + k),
                         ARRAY(SELECT hv.painting_id FROM painting_embedding_half hv
                               WHERE hv.model = model_name
                                 AND hv.painting_id IS DISTINCT FROM exclude_painting
                               ORDER BY hv.embedding <=> qh
                               LIMIT skip + k),
                         k, r.page) AS m
                JOIN painting p ON p.painting_id = m.painting_id;
            ELSE
                SELECT array_agg(ROW(p.painting_id, p.image_file, p.title, p.author,
                                     p.technique, p.painting_type, p.school, p.timeframe,
                                     p.date, h.distance, 1 - h.distance,
                                     1 - h.distance)::search_result
                                 ORDER BY h.distance, h.painting_id)
                INTO page
                FROM (SELECT e.painting_id, e.embedding <=> q AS distance
                      FROM painting_embedding e
                      WHERE e.model = model_name
                        AND e.painting_id IS DISTINCT FROM exclude_painting
                      ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh
                      LIMIT k OFFSET skip) AS h
                JOIN painting p ON p.painting_id = h.painting_id;
            END IF;
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
        IF probes > 0 THEN
            -- A new vector, as unfiltered: the walk's matching rows up to this page's end
            -- and as many of the probe index's, re-ranked together (merged_page); the
            -- probe is this kind's second pass, so a page beyond the guard's threshold is
            -- answered exactly when few enough paintings match, and kept otherwise.
            PERFORM set_config('ivfflat.probes', probes::text, true);
            SELECT array_agg(ROW(p.painting_id, p.image_file, p.title, p.author,
                                 p.technique, p.painting_type, p.school, p.timeframe,
                                 p.date, m.distance, 1 - m.distance,
                                 1 - m.distance)::search_result
                             ORDER BY m.distance, m.painting_id)
            INTO page
            FROM merged_page(q, model_name,
                     ARRAY(SELECT e.painting_id FROM painting_embedding e
                           JOIN painting f ON f.painting_id = e.painting_id
                           WHERE e.model = model_name
                             AND e.painting_id IS DISTINCT FROM exclude_painting
                             AND painting_matches(ROW(f.*)::painting, r)
                           ORDER BY l2_normalize(e.embedding)::halfvec(1024) <=> qh
                           LIMIT skip + k),
                     ARRAY(SELECT hv.painting_id FROM painting_embedding_half hv
                           JOIN painting f ON f.painting_id = hv.painting_id
                           WHERE hv.model = model_name
                             AND hv.painting_id IS DISTINCT FROM exclude_painting
                             AND painting_matches(ROW(f.*)::painting, r)
                           ORDER BY hv.embedding <=> qh
                           LIMIT skip + k),
                     k, r.page) AS m
            JOIN painting p ON p.painting_id = m.painting_id;
            IF r.page = 1 AND cardinality(page) = k AND matching < 20 * prefilter_limit
               AND page[least(k, 10)].distance > lost_distance THEN
                page := NULL;
            END IF;
        ELSE
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
