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
    {{search_request_fields}}
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
