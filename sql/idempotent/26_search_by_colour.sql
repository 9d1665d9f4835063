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
    {{search_parameters}}
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
    q record := colour_terms(colours);
BEGIN
    RETURN QUERY SELECT * FROM colour_page(q.lab, q.weights, r);
END
$$;
