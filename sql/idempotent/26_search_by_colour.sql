-- Search by colour: paintings whose palettes (table painting_palette, revision 0015) hold
-- the colours asked, in the shares asked.
--
--   SELECT title, author, similarity FROM search_by_colour(ARRAY['#1e3a8a', '#d4af37']);
--   SELECT * FROM search_by_colour(ARRAY['#1e3a8a:3', '#d4af37:1'], k => 5,
--                                  school => 'italian');
--
-- The ranking (chosen by measurement: bench/README.md, "Searching by colour"): each asked
-- colour q with weight w (the weights normalised to sum 1: the shares asked for) is
-- covered by the palette colours p near it, each counting its share s by how near it is,
-- s * exp(-dE(q, p)^2 / (2 * 20^2)) with dE the CIE76 distance in Lab; the score is
-- sum over q of min(w, coverage of q), 1 when the painting has every colour in at least
-- the share asked. A painting all blue answers '#1e3a8a' with 1 but blue and gold with
-- 0.5; a 5% accent of gold adds only 0.05.

-- sRGB 0..255 to CIE Lab (D65): the formulas of cli/pgallery/palette.py, as inlinable
-- SQL expressions (no SET clause, one expression each), so that computing the anchors or
-- a query's colours costs arithmetic, not function calls.
CREATE OR REPLACE FUNCTION srgb_linear(c float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN c / 255.0 <= 0.04045 THEN c / 255.0 / 12.92
            ELSE ((c / 255.0 + 0.055) / 1.055) ^ 2.4 END;

CREATE OR REPLACE FUNCTION lab_f(t float8) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN t > 216.0 / 24389 THEN cbrt(t) ELSE (24389.0 / 27 * t + 16) / 116 END;

CREATE OR REPLACE FUNCTION lab_of_linear(r float8, g float8, b float8) RETURNS real[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY[
    116 * lab_f(0.2126729 * r + 0.7151522 * g + 0.0721750 * b) - 16,
    500 * (lab_f((0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047)
           - lab_f(0.2126729 * r + 0.7151522 * g + 0.0721750 * b)),
    200 * (lab_f(0.2126729 * r + 0.7151522 * g + 0.0721750 * b)
           - lab_f((0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883))]::real[];

CREATE OR REPLACE FUNCTION srgb_to_lab(r float8, g float8, b float8) RETURNS real[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN lab_of_linear(srgb_linear(r), srgb_linear(g), srgb_linear(b));

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
-- channel (0, 51, ..., 255), about 10-25 Delta E apart.
CREATE OR REPLACE FUNCTION colour_anchors() RETURNS real[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT array_agg(srgb_to_lab(51 * r, 51 * g, 51 * b) ORDER BY r, g, b)
    FROM generate_series(0, 5) AS r, generate_series(0, 5) AS g, generate_series(0, 5) AS b;
END;

-- A palette (n x 3 Lab, n shares or weights) as a unit vector over the anchors: anchor
-- a gets sum over colours c of share(c) * exp(-dE(a, c)^2 / (2 * 20^2)). Two palettes'
-- cosine is then a smoothed share-weighted colour overlap: what the HNSW index on
-- painting_palette.histogram ranks candidates by (bench/README.md says how many it takes
-- for the exact ranking's top rows to be among them).
CREATE OR REPLACE FUNCTION palette_histogram(lab real[], shares real[]) RETURNS vector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT l2_normalize(array_agg(h.weight ORDER BY h.anchor)::vector)
    FROM (SELECT a.i AS anchor,
                 sum(shares[j] * exp(-((anchors[a.i][1] - lab[j][1]) ^ 2
                                       + (anchors[a.i][2] - lab[j][2]) ^ 2
                                       + (anchors[a.i][3] - lab[j][3]) ^ 2) / 800.0)) AS weight
          FROM (SELECT colour_anchors() AS anchors) AS c,
               generate_series(1, 216) AS a(i),
               generate_subscripts(shares, 1) AS j
          GROUP BY a.i) AS h;
END;

-- The score (see the top of this file): how much of each asked colour's weight the
-- palette covers with colours near it, summed. 0..1.
CREATE OR REPLACE FUNCTION palette_coverage(q_lab real[], q_weights real[],
                                            lab real[], shares real[]) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT sum(least(c.weight, c.covered))
    FROM (SELECT q_weights[i] AS weight,
                 sum(shares[j] * exp(-((q_lab[i][1] - lab[j][1]) ^ 2
                                       + (q_lab[i][2] - lab[j][2]) ^ 2
                                       + (q_lab[i][3] - lab[j][3]) ^ 2) / 800.0)) AS covered
          FROM generate_subscripts(q_weights, 1) AS i, generate_subscripts(shares, 1) AS j
          GROUP BY i) AS c;
END;

-- The histogram follows the colours: set on every insert and on every change of them.
CREATE OR REPLACE FUNCTION fill_palette_histogram() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    NEW.histogram := palette_histogram(NEW.lab, NEW.shares);
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER painting_palette_histogram
    BEFORE INSERT OR UPDATE OF lab, shares ON painting_palette
    FOR EACH ROW EXECUTE FUNCTION fill_palette_histogram();

-- How many candidates the index gives for the rows up to n of a ranking, to be re-ranked
-- exactly (bench/README.md, "Searching by colour": the exact top 10 is among the first
-- 400 in nearly every query at 100k).
CREATE OR REPLACE FUNCTION colour_candidates(n integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN least(100000, greatest(400, 8 * n));

-- search_by_colour: the paintings whose palettes best hold the colours asked.
--
-- colours   1 to 5 of '#rrggbb', each optionally ':weight' (relative, default 1)
-- The other parameters are search_by_vector's: the same filters, k, page, min_similarity
-- (on the score, 0..1) and order_by. model is accepted and checked like everywhere (a
-- palette belongs to the image, not to a model); ef_search, probes, exact: exact => true
-- scores every matching painting, without the index.
--
-- How: the asked colours become a histogram (palette_histogram) and the HNSW index on
-- painting_palette.histogram gives the candidates nearest to it, filters checked as the
-- graph is walked (pgvector's iterative scan); the candidates (colour_candidates rows,
-- growing with the page) are re-ranked exactly by palette_coverage. When filters leave
-- few paintings (fewer than colour_candidates * 4), all of them are scored exactly.
CREATE OR REPLACE FUNCTION search_by_colour(
    colours text[],
    {{search_parameters}}
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET enable_sort = on
SET plan_cache_mode = auto
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
    skip integer := (r.page - 1) * r.k;
    q_lab real[];
    q_weights real[];
    q_hist vector;
    term text;
    weight float8;
    wanted integer;
    matching bigint;
BEGIN
    IF colours IS NULL OR cardinality(colours) = 0 OR cardinality(colours) > 5 THEN
        RAISE EXCEPTION 'give 1 to 5 colours, got %', coalesce(cardinality(colours), 0)
            USING ERRCODE = 'PGA06', HINT = 'e.g. search_by_colour(ARRAY[''#1e3a8a'', ''#d4af37''])';
    END IF;
    FOREACH term IN ARRAY colours LOOP
        IF term !~ '^#[0-9a-fA-F]{6}(:[0-9]*\.?[0-9]+)?$' THEN
            PERFORM colour_lab(term);          -- raises PGA06 naming the term
        END IF;
        weight := coalesce(nullif(split_part(term, ':', 2), '')::float8, 1);
        IF weight <= 0 OR weight > 1000 THEN
            RAISE EXCEPTION 'the weight of % must be above 0 and at most 1000', quote_literal(term)
                USING ERRCODE = 'PGA06';
        END IF;
        q_lab := q_lab || ARRAY[colour_lab(split_part(term, ':', 1))];
        q_weights := q_weights || weight::real;
    END LOOP;
    q_weights := ARRAY(SELECT w / sum(w) OVER () FROM unnest(q_weights) WITH ORDINALITY
                       AS t(w, n) ORDER BY n);
    q_hist := palette_histogram(q_lab, q_weights);
    wanted := colour_candidates(skip + r.k);

    IF NOT r.exact AND has_filters(r) THEN
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
        SELECT count(*) INTO matching FROM (
            SELECT 1 FROM painting p WHERE painting_matches(p, r) LIMIT 4 * wanted) AS bounded;
        r.exact := matching < 4 * wanted;
    END IF;

    IF NOT r.exact THEN
        PERFORM set_config('hnsw.ef_search', least(1000, wanted)::text, true),
                set_config('enable_sort', 'off', true);
        RETURN QUERY SELECT * FROM finished_page(ARRAY(
            SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
                       p.painting_type, p.school, p.timeframe, p.date,
                       1 - s.score, s.score, s.score)::search_result
            FROM (SELECT c.painting_id,
                         palette_coverage(q_lab, q_weights, c.lab, c.shares) AS score
                  FROM (SELECT pp.painting_id, pp.lab, pp.shares
                        FROM painting_palette pp
                        JOIN painting p ON p.painting_id = pp.painting_id
                        WHERE painting_matches(p, r)
                        ORDER BY pp.histogram <=> q_hist
                        LIMIT wanted) AS c
                  ORDER BY 2 DESC, 1
                  LIMIT r.k OFFSET skip) AS s
            JOIN painting p ON p.painting_id = s.painting_id), r);
        RETURN;
    END IF;

    -- Exact: every matching painting's palette scored.
    RETURN QUERY SELECT * FROM finished_page(ARRAY(
        SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
                   p.painting_type, p.school, p.timeframe, p.date,
                   1 - s.score, s.score, s.score)::search_result
        FROM (SELECT pp.painting_id,
                     palette_coverage(q_lab, q_weights, pp.lab, pp.shares) AS score
              FROM painting_palette pp
              JOIN painting p ON p.painting_id = pp.painting_id
              WHERE painting_matches(p, r)
              ORDER BY 2 DESC, 1
              LIMIT r.k OFFSET skip) AS s
        JOIN painting p ON p.painting_id = s.painting_id), r);
END
$$;
