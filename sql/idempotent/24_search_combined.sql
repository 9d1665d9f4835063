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
    {{search_parameters}}
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- which guard threshold applies (nearest_paintings): a new vector's, a prompt's when the
-- query has a prompt term (set below)
SET pgallery.query_kind = 'vector'
SECURITY DEFINER  -- reads the named paintings' vectors (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
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
