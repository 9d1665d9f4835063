-- Staged loading: a loader COPYs a batch into a temporary table, then one call merges it.
--
--   BEGIN;
--   SELECT create_painting_staging();
--   COPY painting_staging (ordinal, image_file, title, ..., embedding) FROM STDIN (FORMAT binary);
--   SELECT * FROM merge_staged_paintings('azure-vision/2023-04-15');
--   COMMIT;
--
-- One batch, one transaction: killing a load loses at most the batch in flight and never
-- leaves half-written rows. Idempotent on image_file: a re-run updates, never duplicates.

-- The session's staging table; emptied at every commit.
CREATE OR REPLACE FUNCTION create_painting_staging() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS painting_staging (
        ordinal       bigint NOT NULL,   -- position in the input: the last duplicate wins
        image_file    text NOT NULL,
        title         text,
        author        text,
        technique     text,
        date          text,
        painting_type text,
        school        text,
        timeframe     text,
        description   text,
        image_uri     text,
        content_hash  text,
        embedding     vector(1024)       -- NULL: metadata only
    ) ON COMMIT DELETE ROWS;
END
$$;

-- Merge the staged rows under `model` (which must be registered). Rows are taken in
-- image_file order so two loaders on overlapping inputs lock rows in the same order and
-- cannot deadlock. Each step is its own statement so that, under READ COMMITTED, the
-- embedding step sees paintings another loader committed meanwhile.
CREATE OR REPLACE FUNCTION merge_staged_paintings(model text)
RETURNS TABLE (paintings_inserted bigint, paintings_updated bigint, embeddings_written bigint)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    m embedding_model;
    written_ids bigint[];
    embedded_files text[];
    -- the transaction's time, as a value: Citus refuses now() in an ON CONFLICT ... DO
    -- UPDATE SET of a distributed or reference table (it must be IMMUTABLE there)
    stamp timestamptz := now();
BEGIN
    IF model IS NULL THEN
        RAISE EXCEPTION 'merge_staged_paintings needs a model' USING ERRCODE = 'PGA04';
    END IF;
    m := resolve_model(model);

    -- Last row wins when the input names the same image twice: the earlier ones are
    -- deleted in place. (Copying the staged rows, 4 kB vectors and all, into a
    -- deduplicated table took a sixth of a bulk load's merge in bench/load_bench.py.)
    DELETE FROM pg_temp.painting_staging s
    WHERE EXISTS (SELECT FROM pg_temp.painting_staging later
                  WHERE later.image_file = s.image_file AND later.ordinal > s.ordinal);

    WITH upserted AS (
        INSERT INTO painting AS p (image_file, title, author, technique, date, painting_type,
                                   school, timeframe, description, image_uri, content_hash)
        SELECT s.image_file, s.title, s.author, s.technique, s.date, s.painting_type,
               s.school, s.timeframe, s.description, s.image_uri, s.content_hash
        FROM pg_temp.painting_staging s
        ORDER BY s.image_file
        -- A NULL in the input means "this input does not say", not "erase": a file of
        -- another model's vectors without date or school columns must not wipe them.
        ON CONFLICT ON CONSTRAINT painting_image_file_key DO UPDATE SET
            title = coalesce(excluded.title, p.title),
            author = coalesce(excluded.author, p.author),
            technique = coalesce(excluded.technique, p.technique),
            date = coalesce(excluded.date, p.date),
            painting_type = coalesce(excluded.painting_type, p.painting_type),
            school = coalesce(excluded.school, p.school),
            timeframe = coalesce(excluded.timeframe, p.timeframe),
            description = coalesce(excluded.description, p.description),
            image_uri = coalesce(excluded.image_uri, p.image_uri),
            content_hash = coalesce(excluded.content_hash, p.content_hash),
            updated_at = stamp
        -- leave unchanged rows alone: a re-run of the same file writes no dead tuples
        WHERE (p.title, p.author, p.technique, p.date, p.painting_type, p.school,
               p.timeframe, p.description, p.image_uri, p.content_hash)
              IS DISTINCT FROM
              (coalesce(excluded.title, p.title), coalesce(excluded.author, p.author),
               coalesce(excluded.technique, p.technique), coalesce(excluded.date, p.date),
               coalesce(excluded.painting_type, p.painting_type),
               coalesce(excluded.school, p.school), coalesce(excluded.timeframe, p.timeframe),
               coalesce(excluded.description, p.description),
               coalesce(excluded.image_uri, p.image_uri),
               coalesce(excluded.content_hash, p.content_hash))
        RETURNING (p.xmax = 0) AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
    INTO paintings_inserted, paintings_updated
    FROM upserted;

    WITH written AS (
        INSERT INTO painting_embedding AS pe (painting_id, model, embedding, content_hash)
        SELECT p.painting_id, m.name, s.embedding, s.content_hash
        FROM pg_temp.painting_staging s
        JOIN painting p ON p.image_file = s.image_file
        WHERE s.embedding IS NOT NULL
        ORDER BY p.painting_id
        ON CONFLICT ON CONSTRAINT painting_embedding_pkey DO UPDATE SET
            embedding = excluded.embedding, content_hash = excluded.content_hash,
            embedded_at = stamp
        WHERE pe.embedding IS DISTINCT FROM excluded.embedding
           OR pe.content_hash IS DISTINCT FROM excluded.content_hash
        RETURNING pe.painting_id
    )
    SELECT count(*), array_agg(painting_id) INTO embeddings_written, written_ids FROM written;

    -- The compact copy (painting_embedding_half): a trigger keeps it on a single server; on
    -- Citus, which has no such trigger (78_compact_vectors.sql), it is written here, in the
    -- same transaction, shard by shard (both tables are sharded by painting_id together).
    IF written_ids IS NOT NULL AND distributed_table('painting_embedding') THEN
        INSERT INTO painting_embedding_half AS h (painting_id, model, embedding)
        SELECT e.painting_id, e.model, l2_normalize(e.embedding)::halfvec(1024)
        FROM painting_embedding e
        WHERE e.model = m.name AND e.painting_id = ANY (written_ids)
        ON CONFLICT ON CONSTRAINT painting_embedding_half_pkey DO UPDATE SET embedding = excluded.embedding
        WHERE h.embedding IS DISTINCT FROM excluded.embedding;
    END IF;

    -- an image embedded now is no longer a failure
    -- (the names as a value read first: Citus cannot read a temporary table in a DELETE
    -- on a reference table)
    embedded_files := ARRAY(SELECT s.image_file FROM pg_temp.painting_staging s
                            WHERE s.embedding IS NOT NULL);
    DELETE FROM embedding_failure f
    WHERE f.model = m.name AND f.image_file = ANY (embedded_files);

    TRUNCATE pg_temp.painting_staging;
    RETURN NEXT;
END
$$;
