-- The second candidate source of new-vector queries: an IVFFlat index on the compact copy
-- (painting_embedding_half), probed beside the HNSW graph by nearest_paintings for every
-- query that is not a stored painting (search_by_vector, uploads, composed and filtered
-- vectors, prompts), its candidates re-ranked with the graph's page by exact distance.
--
--   CALL build_vector_probe_index();      -- lists = sqrt(rows)
--   CALL build_vector_probe_index(400);   -- or as given
--   SELECT vector_probes();               -- the lists a search probes (NULL: no probe)
--
-- Why: on 100,000 clustered rows the graph loses 1-4 of 200 new vectors at every
-- ef_search (their pages look like any other, so no distance threshold catches them),
-- and a k-means partition loses different ones: the merge of the two lost none
-- (bench/recall-by-query-kind.md). The index is on the compact copy's own column while
-- the HNSW index is on painting_embedding's expression, so the planner can never take
-- one for the other. `pgallery index tune` and the after-load steps build it from
-- VECTOR_PROBE_MIN_ROWS rows (cli/pgallery/tuning.py); IVFFlat learns its lists from the
-- rows it is built on, so it is rebuilt when the collection has changed a lot. Built
-- under a temporary name and swapped in: searches keep the old one meanwhile.
-- Not on Citus: there the compact copy is sharded and a per-shard k-means over a
-- shard's rows is not the partition measured; the procedure says so and builds nothing,
-- and nearest_paintings never probes on a sharded table.
CREATE OR REPLACE PROCEDURE build_vector_probe_index(lists integer DEFAULT NULL)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SECURITY DEFINER  -- an index needs the table's owner; only an integer is formatted below
AS $$
DECLARE
    n bigint;
BEGIN
    IF distributed_table('painting_embedding_half') THEN
        RAISE NOTICE 'painting_embedding_half is sharded (Citus): no probe index there';
        RETURN;
    END IF;
    IF lists IS NULL THEN
        SELECT count(*) INTO n FROM painting_embedding_half;
        lists := greatest(1, round(sqrt(n)))::integer;
    ELSIF lists < 1 OR lists > 32768 THEN
        RAISE EXCEPTION 'lists must be between 1 and 32768, got %', lists
            USING ERRCODE = 'PGA06';
    END IF;
    -- k-means runs on max(50 * lists, 10,000) sampled vectors held in memory (pgvector
    -- refuses the build beyond maintenance_work_mem): room for them, twice over, for this
    -- build only, where the server's setting is smaller
    PERFORM set_config('maintenance_work_mem',
                       greatest(greatest(50 * lists, 10000) * 4,
                                pg_size_bytes(current_setting('maintenance_work_mem')) / 1024)
                       || 'kB', true);
    DROP INDEX IF EXISTS painting_embedding_half_ivfflat_new;
    -- lists is an integer: format's %s cannot inject anything here
    EXECUTE format('CREATE INDEX painting_embedding_half_ivfflat_new '
                   'ON painting_embedding_half USING ivfflat (embedding halfvec_cosine_ops) '
                   'WITH (lists = %s)', lists);
    DROP INDEX IF EXISTS painting_embedding_half_ivfflat;
    ALTER INDEX painting_embedding_half_ivfflat_new RENAME TO painting_embedding_half_ivfflat;
END
$$;

-- Drop it again (new-vector queries then get the graph's page alone).
CREATE OR REPLACE PROCEDURE drop_vector_probe_index()
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    DROP INDEX IF EXISTS painting_embedding_half_ivfflat;
END
$$;

-- How many lists of the probe index a new-vector search reads: the setting
-- pgallery.vector_probes when set (0: none), else 1.5 % of the index's lists and at least
-- 3 (bench/README.md, section 16: at 100k rows 5 of 316 lists, ~1,600 rows; on 3,000 rows
-- one list of 55 still let 0-2 of 200 through where 2 or more lost none); NULL when
-- there is no probe index, or when painting_embedding's own ANN index is IVFFlat (the
-- probe would repeat it, and ivfflat.probes is that index's setting).
CREATE OR REPLACE FUNCTION vector_probes() RETURNS integer
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT CASE WHEN to_regclass('painting_embedding_ivfflat') IS NOT NULL THEN NULL
                ELSE coalesce(nullif(current_setting('pgallery.vector_probes', true), '')::integer,
                              greatest(3, ceil(o.option_value::integer * 0.015))::integer)
           END
    FROM pg_class c
    CROSS JOIN LATERAL pg_options_to_table(c.reloptions) AS o
    WHERE c.oid = to_regclass('painting_embedding_half_ivfflat')
      AND o.option_name = 'lists';
$$;

-- The page nearest_paintings serves a new vector from its two candidate sources: graph,
-- the HNSW scan's painting_ids in scan order, and probe, the probe index's, each holding
-- the rows up to this page's end (page * k). Page j is the k nearest by exact distance
-- among the first j * k of each source that no earlier page showed, so pages 1..n are
-- recomputed here from the same two scans and no row comes twice across pages (each
-- call's scans are prefixes of a deeper page's: the same walk, read further).
CREATE OR REPLACE FUNCTION merged_page(q vector, model_name text, graph bigint[],
                                       probe bigint[], k integer, page integer)
RETURNS TABLE (painting_id bigint, distance float8)
LANGUAGE plpgsql STABLE
ROWS 10    -- one page: so the caller joins its paintings by key, not by a scan of all
SET search_path FROM CURRENT
AS $$
DECLARE
    ids bigint[];
    dists float8[];
    graph_at bigint[];      -- each candidate's position in graph (NULL: not there)
    probe_at bigint[];
    shown bigint[] := '{}';
    picked bigint[];
BEGIN
    SELECT array_agg(c.id), array_agg(e.embedding <=> q), array_agg(c.g), array_agg(c.p)
    INTO ids, dists, graph_at, probe_at
    FROM (SELECT x.id, min(x.g) AS g, min(x.p) AS p
          FROM (SELECT s.id, s.pos AS g, NULL::bigint AS p
                FROM unnest(graph) WITH ORDINALITY AS s(id, pos)
                UNION ALL
                SELECT s.id, NULL, s.pos FROM unnest(probe) WITH ORDINALITY AS s(id, pos)) x
          GROUP BY x.id) c
    JOIN painting_embedding e ON e.painting_id = c.id AND e.model = model_name;
    FOR j IN 1..page LOOP
        SELECT array_agg(u.id ORDER BY u.d, u.id) INTO picked
        FROM (SELECT u.id, u.d FROM unnest(ids, dists, graph_at, probe_at) AS u(id, d, g, p)
              WHERE (u.g <= j * k OR u.p <= j * k) AND u.id <> ALL (shown)
              ORDER BY u.d, u.id
              LIMIT k) u;
        shown := shown || coalesce(picked, '{}');
    END LOOP;
    RETURN QUERY
    SELECT u.id, u.d FROM unnest(ids, dists) AS u(id, d)
    WHERE u.id = ANY (picked)
    ORDER BY u.d, u.id;
END
$$;
