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
