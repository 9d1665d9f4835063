-- search_hybrid: semantic and keyword search fused by reciprocal rank fusion (RRF).
--
--   SELECT title, author, score FROM search_hybrid('sunflowers', k => 5);
--   SELECT * FROM search_hybrid('madonna child', school => 'italian', year_to => 1500);
--
-- Two rankings of the paintings that pass the filters:
--   semantic  the prompt's cached embedding (see search_by_text) against image embeddings
--   keyword   full-text match of the prompt's words (any of them) against title, author,
--             description, technique, type and school, ranked by ts_rank_cd
-- Each painting scores sum(1 / (rrf_k + rank)) over the rankings it appears in, the standard
-- RRF with rrf_k = 60; each ranking contributes its best `candidates` rows (default 4k,
-- at least 40). `score` holds the fused score; `distance`/`similarity` are the cosine
-- distance to the prompt when it is embedded.
-- If the prompt has no cached embedding (a provider without text, such as `local`), the
-- ranking is keyword-only and a NOTICE says so.
CREATE OR REPLACE FUNCTION search_hybrid(
    prompt text,
    {{search_parameters}},
    rrf_k integer DEFAULT 60,
    candidates integer DEFAULT NULL
) RETURNS SETOF search_result
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET pgallery.query_kind = 'text'  -- which guard threshold applies (nearest_paintings)
SECURITY DEFINER  -- reads distances for the fused rows (99_privileges.sql)
AS $$
DECLARE
    r search_request := checked_request({{search_request}});
    m embedding_model := resolve_model(r.model);
    q vector;
    n integer;
    wide search_request := r;   -- the semantic ranking's request: n rows, not k
    words tsquery;
BEGIN
    IF prompt IS NULL OR btrim(prompt) = '' THEN
        RAISE EXCEPTION 'the prompt is empty' USING ERRCODE = 'PGA06';
    END IF;
    IF rrf_k IS NULL OR rrf_k < 0 THEN
        RAISE EXCEPTION 'rrf_k must be 0 or more' USING ERRCODE = 'PGA06';
    END IF;
    -- each ranking offers enough rows for this page: the earlier pages' and this one's
    n := greatest(coalesce(candidates, 4 * k * r.page), k * r.page, 40);
    wide.k := n;                -- the semantic ranking: best first, whole, no cut-off
    wide.page := 1;
    wide.min_similarity := NULL;
    wide.order_by := 'similarity';
    q := prompt_vector(prompt, m.name);
    IF q IS NULL THEN
        RAISE NOTICE 'prompt not embedded for model %: keyword ranking only', m.name
            USING HINT = CASE WHEN m.provider = 'local' THEN
                format('model %s embeds images only; for the semantic half add a text '
                       'model with: pgallery reembed --provider clip (or azure)', m.name)
                ELSE 'pgallery search text "<prompt>" embeds it (needs a text-capable provider)'
                END;
    END IF;
    -- Any of the prompt's words, stemmed (english) or as written (simple, for names).
    -- plainto_tsquery parses the text safely; its canonical output joins lexemes with
    -- ' & ', which we turn into ' | ' (lexemes are quoted and hold no spaces).
    words := replace(plainto_tsquery('english', prompt)::text, ' & ', ' | ')::tsquery
          || replace(plainto_tsquery('simple', prompt)::text, ' & ', ' | ')::tsquery;

    RETURN QUERY SELECT * FROM finished_page(ARRAY(
    WITH semantic AS (
        SELECT s.painting_id, row_number() OVER (ORDER BY s.distance, s.painting_id) AS rank
        FROM nearest_paintings(q, wide, NULL) AS s
        WHERE q IS NOT NULL
    ),
    keyword AS (
        SELECT ranked.painting_id,
               row_number() OVER (ORDER BY ranked.rank_cd DESC, ranked.painting_id) AS rank
        FROM (
            SELECT p.painting_id, ts_rank_cd(p.search_document, words) AS rank_cd
            FROM painting p
            WHERE p.search_document @@ words
              AND painting_matches(ROW(p.*)::painting, r)
              AND EXISTS (SELECT 1 FROM painting_embedding e
                          WHERE e.painting_id = p.painting_id AND e.model = m.name)
            ORDER BY rank_cd DESC, p.painting_id
            LIMIT n
        ) AS ranked
    ),
    fused AS (
        SELECT coalesce(s.painting_id, kw.painting_id) AS painting_id,
               coalesce(1.0 / (rrf_k + s.rank), 0) + coalesce(1.0 / (rrf_k + kw.rank), 0)
                   AS rrf_score
        FROM semantic s FULL JOIN keyword kw ON kw.painting_id = s.painting_id
        ORDER BY rrf_score DESC, painting_id
        LIMIT k OFFSET (r.page - 1) * k
    )
    -- a plain outer join on the key (one vector per painting and model), not a lateral
    -- one: Citus joins the fused rows to the shards so, never laterally
    SELECT ROW(p.painting_id, p.image_file, p.title, p.author, p.technique,
               p.painting_type, p.school, p.timeframe, p.date,
               e.embedding <=> q, 1 - (e.embedding <=> q),
               f.rrf_score::double precision)::search_result
    FROM fused f
    JOIN painting p ON p.painting_id = f.painting_id
    LEFT JOIN painting_embedding e
           ON e.painting_id = f.painting_id AND e.model = m.name AND q IS NOT NULL
    ORDER BY f.rrf_score DESC, f.painting_id), r);
END
$$;
