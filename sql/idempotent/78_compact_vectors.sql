-- painting_embedding_half follows painting_embedding (table: incremental/0013): one
-- statement-level trigger per kind of write, so a bulk load's batch costs one INSERT ...
-- SELECT over its transition table, not a trigger call per row. Deletes cascade by the
-- foreign key.
CREATE OR REPLACE FUNCTION copy_compact_vectors() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO painting_embedding_half AS h (painting_id, model, embedding)
    SELECT n.painting_id, n.model, l2_normalize(n.embedding)::halfvec(1024)
    FROM changed_rows n
    ON CONFLICT (painting_id, model) DO UPDATE SET embedding = excluded.embedding
    WHERE h.embedding IS DISTINCT FROM excluded.embedding;
    RETURN NULL;
END
$$;

-- On Citus (painting_embedding sharded) there are no such triggers: Citus refuses
-- triggers on a distributed table, and a shard's statement trigger cannot read a
-- transition table; merge_staged_paintings, the one writer of painting_embedding, fills the
-- copy itself there (60_merge_staged_paintings.sql). The statements start their lines so
-- that the migration runner finds and drops them as it does any trigger of the layer.
DO $$
BEGIN
    IF NOT distributed_table('painting_embedding') THEN
CREATE OR REPLACE TRIGGER painting_embedding_half_insert
    AFTER INSERT ON painting_embedding
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_compact_vectors();

CREATE OR REPLACE TRIGGER painting_embedding_half_update
    AFTER UPDATE ON painting_embedding
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION copy_compact_vectors();
    END IF;
END
$$;
