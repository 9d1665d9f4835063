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
-- prompts; a kind not measured has its threshold reset (no guard). With the probe index
-- (the vector figures name it), the vector kind's own choice becomes
-- pgallery.ef_search_probed, the ef_search new vectors run at (probed_ef_search). The stored paintings'
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
        -- the ef_search new vectors need with the probe index beside the graph
        -- (probed_ef_search, 01_settings.sql), when the figures were measured with it
        IF kinds -> 'vector' -> 'probe' IS NULL OR jsonb_typeof(kinds -> 'vector' -> 'probe') = 'null'
           OR (kinds -> 'vector' ->> 'chosen') IS NULL THEN
            EXECUTE format('ALTER DATABASE %I RESET pgallery.ef_search_probed',
                           current_database());
        ELSE
            EXECUTE format('ALTER DATABASE %I SET pgallery.ef_search_probed = %s',
                           current_database(), (kinds -> 'vector' ->> 'chosen')::integer);
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
