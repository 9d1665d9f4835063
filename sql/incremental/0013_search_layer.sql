-- Revision 0013: what the search layer stores. Recall measured on the collection itself
-- (`pgallery index tune`), and the compact copy of the vectors that exact search scans.
--
-- One row per measurement: the setting swept, the value chosen (the smallest meeting the
-- target on the mean and in the tail), and what was measured there, with every setting's
-- figures in `measurements`. index_tuning_status() shows the latest; the loader compares
-- `vectors` with the collection to decide when to measure again.
CREATE TABLE index_tuning (
    tuning_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tuned_at            timestamptz NOT NULL DEFAULT now(),
    model               text NOT NULL,
    index_method        text NOT NULL CHECK (index_method IN ('hnsw', 'ivfflat')),
    setting             text NOT NULL CHECK (setting IN ('hnsw.ef_search', 'ivfflat.probes')),
    chosen              integer,          -- NULL: no value swept met the target
    vectors             bigint NOT NULL,  -- the model's vectors when measured
    sample_size         integer NOT NULL,
    k                   integer NOT NULL,
    target_mean         real NOT NULL,    -- the rule: mean recall@k >= target_mean and
    tail_recall         real NOT NULL,    -- at least tail_share of the sample queries at
    tail_share          real NOT NULL,    -- recall@k >= tail_recall
    mean                real,             -- at the chosen value (or the last swept)
    p5                  real,
    share_below_half    real,
    lost_query_distance real,             -- the guard's threshold set with it (see below)
    seconds             real NOT NULL,
    measurements        jsonb NOT NULL    -- [{value, mean, p5, share_below_half, p50_ms}]
);
CREATE INDEX index_tuning_latest ON index_tuning (model, index_method, tuned_at DESC);

GRANT SELECT ON index_tuning TO pgallery_reader;

-- A compact copy of every vector, for exact search (nearest_paintings' exact path): each
-- vector normalised and in half precision, kept in the row (2 kB, three to a page) rather
-- than in TOAST's 4 kB chunks the full column needs. An exact scan reads a third of the
-- bytes and never detoasts; the few candidates it finds are re-ranked on the full vectors,
-- so the answers are the same. The layer's trigger keeps it in step with
-- painting_embedding (78_compact_vectors.sql); deleting a vector deletes its copy.
CREATE TABLE painting_embedding_half (
    painting_id bigint NOT NULL,
    model       text NOT NULL,
    embedding   halfvec(1024) NOT NULL,
    PRIMARY KEY (painting_id, model),
    FOREIGN KEY (painting_id, model) REFERENCES painting_embedding
        ON DELETE CASCADE ON UPDATE CASCADE
);
ALTER TABLE painting_embedding_half ALTER COLUMN embedding SET STORAGE PLAIN;
INSERT INTO painting_embedding_half (painting_id, model, embedding)
SELECT e.painting_id, e.model, l2_normalize(e.embedding)::halfvec(1024)
FROM painting_embedding e;
ANALYZE painting_embedding_half;

-- Loads write it through the trigger, as the writer; nobody else reads it directly.
GRANT SELECT, INSERT, UPDATE, DELETE ON painting_embedding_half TO pgallery_writer;
