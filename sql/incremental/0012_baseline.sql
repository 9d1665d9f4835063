-- Revision 0012, the baseline: every table, type, index, role and setting that the
-- migrations 0001-0012 created, in one run-once step (they were folded into this baseline
-- when the layout of docs/migrations.md came in; their text is in the git history).
-- The functions are not here: they are the replaceable layer (sql/releases/0012.sql at this
-- revision), installed after this file. Undone by 0012_baseline.down.sql.
--
--   embedding_model     the models whose vectors we store; exactly one is active
--   painting            one row per image, keyed by SemArt's image_file, with its metadata
--   painting_embedding  one vector per (painting, model): models are never mixed
--   prompt_embedding    cache of text-prompt vectors per model, filled by the CLI
--   embedding_failure   images that could not be embedded, for `pgallery load --retry-failed`
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Result row of every search_* function. The functions return SETOF this type rather than
-- RETURNS TABLE because OUT columns may not share a name with an input parameter, and the
-- filters (author, technique, school, ...) keep their natural names.
CREATE TYPE search_result AS (
    painting_id   bigint,
    image_file    text,
    title         text,
    author        text,
    technique     text,
    painting_type text,
    school        text,
    timeframe     text,
    date          text,
    distance      double precision,  -- cosine distance; NULL for keyword-only hybrid hits
    similarity    double precision,  -- 1 - distance
    score         double precision   -- what the rows are ordered by (RRF score for hybrid)
);

CREATE TABLE embedding_model (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9._:/@+-]{1,200}$'),
    -- the model's own dimension; vectors are stored zero-padded to the column's 1024,
    -- which changes neither cosine distance, L2 distance nor inner product
    dimension   integer NOT NULL CHECK (dimension BETWEEN 1 AND 1024),
    distance    text NOT NULL DEFAULT 'cosine' CHECK (distance = 'cosine'),
    provider    text,
    is_active   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- At most one active model: switching is one UPDATE (see use_model()).
CREATE UNIQUE INDEX embedding_model_one_active ON embedding_model ((true)) WHERE is_active;

-- Parse SemArt's free-text DATE ("1876", "c. 1650", "1630-35", "1505-1510", "before 1520",
-- "16th century", "-") into an inclusive year range; NULL when no year can be read.
CREATE FUNCTION parse_year_range(date_text text) RETURNS int4range
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m text[];
    lo integer;
    hi integer;
BEGIN
    -- two years: "1630-1635", "1630-35", "1630/35", "1630–35"
    m := regexp_match(date_text, '(\d{4})\s*[-/–]\s*(\d{2,4})');
    IF m IS NOT NULL THEN
        lo := m[1]::integer;
        hi := CASE length(m[2])
                  WHEN 4 THEN m[2]::integer
                  WHEN 3 THEN (lo / 1000) * 1000 + m[2]::integer
                  ELSE (lo / 100) * 100 + m[2]::integer
              END;
        IF hi < lo THEN hi := lo; END IF;
        RETURN int4range(lo, hi, '[]');
    END IF;
    -- one year
    m := regexp_match(date_text, '(\d{4})');
    IF m IS NOT NULL THEN
        RETURN int4range(m[1]::integer, m[1]::integer, '[]');
    END IF;
    -- a century: "16th century" -> 1501-1600
    m := regexp_match(date_text, '(\d{1,2})(st|nd|rd|th)\s+c', 'i');
    IF m IS NOT NULL THEN
        hi := m[1]::integer * 100;
        RETURN int4range(hi - 99, hi, '[]');
    END IF;
    RETURN NULL;
END
$$;

CREATE TABLE painting (
    painting_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_file    text NOT NULL UNIQUE CHECK (image_file <> ''),
    title         text,
    author        text,
    technique     text,
    date          text,            -- as written in the source ("c. 1650")
    painting_type text,            -- SemArt's TYPE (religious, portrait, landscape, ...)
    school        text,
    timeframe     text,
    description   text,
    image_uri     text,            -- where the image is: a path or a URL
    content_hash  text,            -- sha256 of the image bytes last embedded
    years         int4range GENERATED ALWAYS AS (parse_year_range(date)) STORED,
    -- keyword search document: titles and authors are names (no stemming), the
    -- description is English prose
    search_document tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A') ||
        setweight(to_tsvector('simple'::regconfig, coalesce(author, '')), 'B') ||
        setweight(to_tsvector('english'::regconfig, coalesce(title, '') || ' ' ||
                                                   coalesce(description, '')), 'C') ||
        setweight(to_tsvector('simple'::regconfig, coalesce(technique, '') || ' ' ||
                                                  coalesce(painting_type, '') || ' ' ||
                                                  coalesce(school, '')), 'D')
    ) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE painting_embedding (
    painting_id  bigint NOT NULL REFERENCES painting ON DELETE CASCADE,
    model        text NOT NULL REFERENCES embedding_model ON UPDATE CASCADE,
    embedding    vector(1024) NOT NULL,
    content_hash text,              -- hash of the image this vector was computed from
    embedded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (painting_id, model)
);

-- The cache key of a prompt: sha256 of its UTF-8 bytes. convert_to() is only STABLE in
-- general, but a database's encoding never changes, so for one database it is immutable.
CREATE FUNCTION prompt_key(prompt text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN sha256(convert_to(prompt, 'UTF8'));

CREATE TABLE prompt_embedding (
    model        text NOT NULL REFERENCES embedding_model ON UPDATE CASCADE ON DELETE CASCADE,
    prompt       text NOT NULL CHECK (prompt <> ''),
    -- keyed by a hash: a B-tree entry cannot hold an arbitrarily long prompt
    prompt_hash  bytea GENERATED ALWAYS AS (prompt_key(prompt)) STORED,
    embedding    vector(1024) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, prompt_hash)
);

CREATE TABLE embedding_failure (
    image_file   text NOT NULL,
    model        text NOT NULL,
    image_uri    text,
    code         text NOT NULL,
    message      text NOT NULL,
    failed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_file, model)
);

-- Metadata filter indexes. Substring filters (author, technique, school) are ILIKE
-- '%value%', which pg_trgm's GIN opclass answers; exact filters compare lower() values.
CREATE INDEX painting_author_trgm    ON painting USING gin (author gin_trgm_ops);
CREATE INDEX painting_technique_trgm ON painting USING gin (technique gin_trgm_ops);
CREATE INDEX painting_school_trgm    ON painting USING gin (school gin_trgm_ops);
CREATE INDEX painting_type_lower     ON painting (lower(painting_type));
CREATE INDEX painting_timeframe_lower ON painting (lower(timeframe));
CREATE INDEX painting_years          ON painting USING gist (years);
CREATE INDEX painting_search_document ON painting USING gin (search_document);

-- The approximate-nearest-neighbour index (0002, in 0009's shape).
--
-- HNSW over cosine distance (Azure AI Vision's recommended metric). m=16, ef_construction=64
-- are pgvector's defaults; bench/ measures them against the alternatives. The index covers
-- every model's vectors: searches filter on the model, and pgvector 0.8's iterative index
-- scans keep reading the graph until enough rows pass that filter.
--
-- It holds normalised half-precision vectors. Measured at 100k (bench/README.md, section
-- 5): an HNSW index over halfvec is a third of the size of one over vector (260 vs 781 MB:
-- a 2 kB element fits three to a page, a 4 kB one takes a page of its own), builds in half
-- the time and half the memory, and ranks with the same recall. The column keeps the full
-- single-precision vectors: distances are computed on them, and the exact path reads them.
-- l2_normalize(embedding)::halfvec(1024): cosine distance ignores length, and a normalised
-- vector's values fit halfvec's range (+-65504) whatever a loaded file held.
-- nearest_paintings orders by the same expression.
--
-- IVFFlat needs training data, so it is not created here: CALL build_ivfflat_index() after a
-- bulk load (the CLI's `pgallery index build` does).
CREATE INDEX painting_embedding_hnsw ON painting_embedding
    USING hnsw ((l2_normalize(embedding)::halfvec(1024)) halfvec_cosine_ops)
    WITH (m = 16, ef_construction = 64);

-- Keep the per-model filter cheap when a second model's vectors are loaded alongside.
CREATE INDEX painting_embedding_model ON painting_embedding (model);

-- The embedding column keeps pgvector's storage (EXTERNAL: a 4 kB vector lives in TOAST).
-- bench/storage_bench.py measured STORAGE PLAIN (in the heap row) against it at 100k rows:
-- equal search latency and exact reads within 10%, for a 45% larger table, so no change.

-- The database's search defaults (0002, 0011). hnsw.ef_search starts at 100 and is recorded
-- as pgallery's own in pgallery.tuned_ef_search, so that tune_search_defaults() may size it
-- to the collection after each load; a default someone set by hand is never changed.
-- ALTER DATABASE needs the database's owner; on a managed server where the migrating role
-- is not the owner we warn and leave pgvector's defaults.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_db_role_setting s
                   JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                   CROSS JOIN LATERAL unnest(s.setconfig) AS entry
                   WHERE d.datname = current_database() AND s.setrole = 0
                     AND entry LIKE 'hnsw.ef\_search=%') THEN
        EXECUTE format('ALTER DATABASE %I SET hnsw.ef_search = 100', current_database());
    END IF;
    EXECUTE format('ALTER DATABASE %I SET ivfflat.probes = 10', current_database());
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_db_role_setting s
                   JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                   CROSS JOIN LATERAL unnest(s.setconfig) AS entry
                   WHERE d.datname = current_database() AND s.setrole = 0
                     AND entry LIKE 'hnsw.ef\_search=%' AND entry <> 'hnsw.ef_search=100') THEN
        EXECUTE format('ALTER DATABASE %I SET pgallery.tuned_ef_search = 100',
                       current_database());
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'not the database owner: hnsw.ef_search / ivfflat.probes defaults not set';
END
$$;

-- Least-privilege roles (0004).
--
--   pgallery_reader  NOLOGIN. Runs the search functions and reads painting metadata:
--                    painting, embedding_model (the model catalogue), which paintings have
--                    an embedding under which model (painting_embedding without its vector
--                    column), and alembic_version (the CLI checks the schema version before
--                    every command). Nothing else: no vectors, no prompt cache, no failure
--                    log, no writes, no DDL, no temporary tables.
--   pgallery_writer  NOLOGIN, member of pgallery_reader. Loads: registers models, stages
--                    (temporary tables) and merges batches, records failures, caches prompt
--                    vectors, refreshes statistics and rebuilds the IVFFlat index. No
--                    TRUNCATE, no DDL, and no DELETE except on the failure log.
--
-- Log in as a member: CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE pgallery_reader;
-- Roles are cluster-wide, so they may already exist from another database: they are created
-- only when missing, and the grants below are per database. Who may EXECUTE which function
-- is not here: the layer's privileges step derives it from the catalog.
-- Untrusted roles must not create objects in the schema the functions resolve names in
-- (CVE-2018-1058): CREATE on it is revoked from PUBLIC below (PostgreSQL 15+'s default).
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['pgallery_reader', 'pgallery_writer'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- another database's migration created it at the same moment
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'cannot create role %: the migrating role lacks CREATEROLE',
                                    role_name
                        USING HINT = 'have an administrator run CREATE ROLE pgallery_reader '
                                     'NOLOGIN; CREATE ROLE pgallery_writer NOLOGIN; then '
                                     'migrate again';
            END;
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role('pgallery_writer', 'pgallery_reader', 'MEMBER') THEN
        GRANT pgallery_reader TO pgallery_writer;
    END IF;
END
$$;

-- Database and schema: both may connect and use the schema; only the writer may create
-- temporary tables (create_painting_staging, merge_staged_paintings); nobody but the owner
-- may create objects in the schema.
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgallery_reader, pgallery_writer',
                   current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pgallery_writer', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'not the owner of database %: grant CONNECT to pgallery_reader and '
                  'CONNECT, TEMPORARY to pgallery_writer, and revoke TEMPORARY from PUBLIC, '
                  'as its owner', current_database();
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO pgallery_reader, pgallery_writer',
                   current_schema());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'cannot change privileges on schema %: grant USAGE to pgallery_reader '
                  'and pgallery_writer, and revoke CREATE from PUBLIC, as its owner',
                  current_schema();
END
$$;

-- Tables.
GRANT SELECT ON painting, embedding_model, alembic_version TO pgallery_reader;
GRANT SELECT (painting_id, model, content_hash, embedded_at) ON painting_embedding
    TO pgallery_reader;

GRANT SELECT, INSERT, UPDATE ON painting, painting_embedding, embedding_model,
                                prompt_embedding, embedding_failure TO pgallery_writer;
GRANT DELETE ON embedding_failure TO pgallery_writer;

-- ANALYZE after a load needs MAINTAIN (PostgreSQL 17+); older servers skip the ANALYZE
-- with a warning, which is harmless.
DO $$
BEGIN
    EXECUTE 'GRANT MAINTAIN ON painting, painting_embedding TO pgallery_writer';
EXCEPTION WHEN syntax_error OR feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'this server has no MAINTAIN privilege: the writer cannot ANALYZE';
END
$$;
