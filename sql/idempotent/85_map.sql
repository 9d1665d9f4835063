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
