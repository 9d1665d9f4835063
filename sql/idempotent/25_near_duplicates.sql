-- Near-duplicate groups: versions of the same picture (resized, cropped a little,
-- re-encoded, colour-shifted), one row per painting that has at least one.
--
--   SELECT * FROM near_duplicates();                          -- the model's own threshold
--   SELECT * FROM near_duplicates(0.97, school => 'dutch');   -- stricter, one school
--
-- Rows: group_id (1 = the largest group), painting_id, image_file, title, author and
-- similarity, the duplicate score of the painting and its group's most central member
-- (that member first, with 1). A group is a connected component of the pairs scoring
-- >= min_similarity. Paintings outside the filters are neither in a group nor link one.

-- One row of near_duplicates() (a type, not RETURNS TABLE: OUT columns may not share the
-- filters' names, author for one).
CREATE TYPE near_duplicate AS (
    group_id     integer,
    painting_id  bigint,
    image_file   text,
    title        text,
    author       text,
    similarity   double precision
);

-- What a pair of vectors is compared on to call it a duplicate: the model's vector as it
-- is, except for the offline `local` descriptors (cli/pgallery/providers/local.py), whose
-- colour histograms (foreground, regions, texture: 704 of the 1024 dimensions) are the
-- same for any two line drawings on black, so that unrelated star charts score 0.96-0.99
-- while a JPEG q50 or colour-shifted copy of one scores 0.79. Their layout (8 x 8 tiny
-- image, dimensions 485-676) and edge (gradient orientations, 853-1004) blocks do tell a
-- copy from another drawing; the signature is those two blocks, each unit length, so its
-- cosine is the mean of the two blocks' cosines. Measured in bench/duplicates_bench.py.
-- No SET clause, like painting_matches(): the planner inlines it into near_duplicates'
-- statement (whose own search_path is pinned), where a call per candidate pair, with a
-- configuration change each, cost more than the comparison.
CREATE OR REPLACE FUNCTION duplicate_signature(model text, embedding vector) RETURNS vector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN model = 'local-descriptors/v1'
            THEN l2_normalize(subvector(embedding, 485, 192))
                 || l2_normalize(subvector(embedding, 853, 152))
            ELSE embedding END;

-- The default min_similarity of near_duplicates() for a model, on duplicate_signature's
-- scale; NULL when no calibration was made for the model (near_duplicates then takes 0.95
-- and says so). Calibrated by bench/duplicates_bench.py on the 634 real images of
-- ../shared/data/real-gallery plus four altered copies of each (50% resize, 10% crop,
-- JPEG q50, brightness x1.1 + hue +5 degrees): bench/README.md, "Near-duplicate groups".
--   local-descriptors/v1  0.93: copies grouped with their original at recall 0.98, 0.98 of
--                         the grouped pairs true (raw cosine reaches precision 0.95 only at
--                         0.97, where recall is 0.88)
-- Kept here rather than in a table so that no schema change was needed; a model's row of
-- embedding_model could carry it later.
CREATE OR REPLACE FUNCTION duplicate_threshold(model text) RETURNS real
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
RETURN CASE model WHEN 'local-descriptors/v1' THEN 0.93 END;

-- How: not all pairs. For each painting, its `neighbours` nearest (default 10) under the
-- model through the HNSW index (iterative scan, with the filters checked as the graph is
-- walked), scored on duplicate_signature; pairs at or above the threshold are edges; the
-- components come from a union-find over the edges (few: duplicates are rare; at a
-- threshold that links everything, at most n * neighbours). A copy is its original's
-- nearest neighbour or nearly (bench/local_quality.py: rank 1 for >= 97%), so 10
-- neighbours find the pairs; a group larger than 10 still comes together through chains.
-- Cost: n index searches, about linear in n (bench/README.md has the times).
-- ef_search: the HNSW candidate list of each search; NULL = 20 (see below).
CREATE OR REPLACE FUNCTION near_duplicates(
    min_similarity real DEFAULT NULL,
    model text DEFAULT NULL,
    author text DEFAULT NULL,
    technique text DEFAULT NULL,
    school text DEFAULT NULL,
    painting_type text DEFAULT NULL,
    timeframe text DEFAULT NULL,
    year_from integer DEFAULT NULL,
    year_to integer DEFAULT NULL,
    neighbours integer DEFAULT 10,
    ef_search integer DEFAULT NULL
) RETURNS SETOF near_duplicate
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- Placeholders: they make the set_config() calls below local to this function.
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
SET enable_sort = on
SET plan_cache_mode = auto
SECURITY DEFINER  -- reads every vector of the model (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request(search_request(
        author => near_duplicates.author, technique => near_duplicates.technique,
        school => near_duplicates.school, painting_type => near_duplicates.painting_type,
        timeframe => near_duplicates.timeframe, year_from => near_duplicates.year_from,
        year_to => near_duplicates.year_to, model => near_duplicates.model,
        ef_search => near_duplicates.ef_search));
    model_name text := r.model;
    threshold real := min_similarity;
    edge_a bigint[];          -- the pairs at or above the threshold (painting ids)
    edge_b bigint[];
    nodes bigint[];           -- the paintings in a pair, ascending
    ia integer[];             -- the pairs as positions in nodes
    ib integer[];
    parent integer[];         -- union-find forest over the positions
    x integer;
    y integer;
    a_id bigint;              -- (Citus) the painting whose neighbours are searched
    a_embedding vector;
    found bigint[];
BEGIN
    IF threshold IS NULL THEN
        threshold := duplicate_threshold(model_name);
        IF threshold IS NULL THEN
            threshold := 0.95;
            RAISE NOTICE 'no calibrated duplicate threshold for model %: using 0.95', model_name
                USING HINT = 'pass min_similarity (higher: stricter)';
        END IF;
    END IF;
    IF threshold IS NULL OR NOT threshold BETWEEN -1 AND 1 THEN
        RAISE EXCEPTION 'min_similarity must be between -1 and 1, got %', threshold
            USING ERRCODE = 'PGA06';
    END IF;
    IF neighbours IS NULL OR neighbours < 1 OR neighbours > 1000 THEN
        RAISE EXCEPTION 'neighbours must be between 1 and 1000, got %',
                        coalesce(neighbours::text, 'NULL')
            USING ERRCODE = 'PGA06';
    END IF;
    -- The same steering as nearest_paintings: the index scan even without statistics
    -- (enable_sort off), and a plan made for this call's filter values. The candidate list
    -- is 20 (at least `neighbours`), not the database's search default (100, sized for
    -- recall@10 of any query): a copy is its original's nearest neighbour or nearly, and
    -- the calibration groups exactly the same at ef_search 10, 20, 40 and 100, while n
    -- searches at 20 cost about two thirds of n at 40 (bench/duplicates_bench.py).
    PERFORM set_config('hnsw.ef_search',
                       least(greatest(coalesce(near_duplicates.ef_search, 20), neighbours),
                             1000)::text, true),
            set_config('enable_sort', 'off', true),
            set_config('plan_cache_mode', 'force_custom_plan', true);

    IF NOT distributed_table('painting_embedding') THEN
        SELECT array_agg(a.painting_id), array_agg(nb.painting_id)
        INTO edge_a, edge_b
        FROM painting_embedding a
        JOIN painting pa ON pa.painting_id = a.painting_id
        CROSS JOIN LATERAL (
            SELECT e.painting_id,
                   1 - (duplicate_signature(model_name, e.embedding)
                        <=> duplicate_signature(model_name, a.embedding)) AS score
            FROM painting_embedding e
            JOIN painting p ON p.painting_id = e.painting_id
            WHERE e.model = model_name
              AND e.painting_id <> a.painting_id
              AND painting_matches(ROW(p.*)::painting, r)
            ORDER BY l2_normalize(e.embedding)::halfvec(1024)
                     <=> l2_normalize(a.embedding)::halfvec(1024)
            LIMIT neighbours
        ) AS nb
        WHERE a.model = model_name
          AND painting_matches(ROW(pa.*)::painting, r)
          AND nb.score >= threshold;
    ELSE
        -- On Citus each painting's neighbours may be on any shard, and Citus cannot run
        -- a lateral join over two shardings: one nearest-neighbour search per painting,
        -- each sent to every shard (with this call's ef_search on the workers).
        PERFORM shard_search_settings(
            least(greatest(coalesce(near_duplicates.ef_search, 20), neighbours), 1000), 1);
        FOR a_id, a_embedding IN
            SELECT a.painting_id, a.embedding
            FROM painting_embedding a
            JOIN painting pa ON pa.painting_id = a.painting_id
            WHERE a.model = model_name AND painting_matches(ROW(pa.*)::painting, r)
            ORDER BY a.painting_id
        LOOP
            SELECT array_agg(nb.painting_id) INTO found
            FROM (
                SELECT e.painting_id,
                       1 - (duplicate_signature(model_name, e.embedding)
                            <=> duplicate_signature(model_name, a_embedding)) AS score
                FROM painting_embedding e
                JOIN painting p ON p.painting_id = e.painting_id
                WHERE e.model = model_name
                  AND e.painting_id <> a_id
                  AND painting_matches(ROW(p.*)::painting, r)
                ORDER BY l2_normalize(e.embedding)::halfvec(1024)
                         <=> l2_normalize(a_embedding)::halfvec(1024)
                LIMIT neighbours
            ) AS nb
            WHERE nb.score >= threshold;
            IF found IS NOT NULL THEN
                edge_a := edge_a || array_fill(a_id, ARRAY[cardinality(found)]);
                edge_b := edge_b || found;
            END IF;
        END LOOP;
    END IF;
    IF edge_a IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('enable_sort', 'on', true);

    -- Union-find (path halving) over positions 1..n of the paintings in a pair.
    nodes := ARRAY(SELECT DISTINCT t.id FROM unnest(edge_a || edge_b) AS t(id) ORDER BY t.id);
    SELECT array_agg(pa.i ORDER BY t.o), array_agg(pb.i ORDER BY t.o)
    INTO ia, ib
    FROM unnest(edge_a, edge_b) WITH ORDINALITY AS t(a, b, o)
    JOIN unnest(nodes) WITH ORDINALITY AS pa(id, i) ON pa.id = t.a
    JOIN unnest(nodes) WITH ORDINALITY AS pb(id, i) ON pb.id = t.b;
    parent := ARRAY(SELECT generate_series(1, cardinality(nodes)));
    FOR j IN 1 .. cardinality(ia) LOOP
        x := ia[j];
        WHILE parent[x] <> x LOOP
            parent[x] := parent[parent[x]];
            x := parent[x];
        END LOOP;
        y := ib[j];
        WHILE parent[y] <> y LOOP
            parent[y] := parent[parent[y]];
            y := parent[y];
        END LOOP;
        IF x <> y THEN
            parent[greatest(x, y)] := least(x, y);
        END IF;
    END LOOP;
    FOR x IN 1 .. cardinality(nodes) LOOP   -- every position straight to its root
        parent[x] := parent[parent[x]];     -- (roots are the smallest position: one pass
    END LOOP;                               --  in ascending order suffices)

    -- The most central member of a group: the highest sum of scores over its pairs (ties:
    -- the smallest painting_id); every member's similarity is then its score against it.
    RETURN QUERY
    WITH member AS (
        SELECT n.id AS painting_id, parent[n.i] AS root
        FROM unnest(nodes) WITH ORDINALITY AS n(id, i)
    ),
    pair AS (
        SELECT DISTINCT least(t.a, t.b) AS a, greatest(t.a, t.b) AS b
        FROM unnest(edge_a, edge_b) AS t(a, b)
    ),
    vec AS (
        SELECT mb.painting_id, mb.root, duplicate_signature(model_name, e.embedding) AS sig
        FROM member mb
        JOIN painting_embedding e ON e.painting_id = mb.painting_id AND e.model = model_name
    ),
    strength AS (
        SELECT v.painting_id, v.root, v.sig,
               sum(1 - (v.sig <=> w.sig)) AS total
        FROM vec v
        JOIN pair pr ON v.painting_id IN (pr.a, pr.b)
        JOIN vec w ON w.painting_id = CASE WHEN pr.a = v.painting_id THEN pr.b ELSE pr.a END
        GROUP BY v.painting_id, v.root, v.sig
    ),
    centre AS (
        SELECT DISTINCT ON (s.root) s.root, s.painting_id, s.sig,
               count(*) OVER (PARTITION BY s.root) AS size
        FROM strength s
        ORDER BY s.root, s.total DESC, s.painting_id
    ),
    numbered AS (
        SELECT c.*, row_number() OVER (ORDER BY c.size DESC, c.painting_id)::integer AS gid
        FROM centre c
    )
    SELECT g.gid, p.painting_id, p.image_file, p.title, p.author,
           CASE WHEN v.painting_id = g.painting_id THEN 1
                ELSE 1 - (v.sig <=> g.sig) END::double precision
    FROM vec v
    JOIN numbered g ON g.root = v.root
    JOIN painting p ON p.painting_id = v.painting_id
    ORDER BY g.gid, v.painting_id <> g.painting_id, 6 DESC, p.painting_id;
END
$$;
