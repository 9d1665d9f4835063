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
                    probed_ef_search(),
                    nullif(current_setting('hnsw.ef_search', true), '')::integer, 40);
END
$$;

-- A new vector (pgallery.query_kind 'vector') that the probe index serves too
-- (vector_probes(), 51_vector_probe_index.sql) needs fewer graph candidates than a stored
-- painting: the ef_search `pgallery index tune` measured to serve that kind with the probe
-- in place (pgallery.ef_search_probed, record_query_kinds), never above the default; NULL
-- (the default applies) for any other query, without the probe, or when the session set
-- its own hnsw.ef_search.
CREATE OR REPLACE FUNCTION probed_ef_search() RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    probed integer := nullif(current_setting('pgallery.ef_search_probed', true), '')::integer;
    session integer := nullif(current_setting('hnsw.ef_search', true), '')::integer;
BEGIN
    IF probed IS NULL OR current_setting('pgallery.query_kind', true) IS DISTINCT FROM 'vector'
       OR session::text IS DISTINCT FROM database_setting('hnsw.ef_search')
       OR coalesce(vector_probes(), 0) = 0 THEN
        RETURN NULL;
    END IF;
    RETURN least(probed, session);
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
    {{search_parameters}}
) RETURNS search_request
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN {{search_request}};

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
