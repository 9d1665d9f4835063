-- pgallery schema, applied by alembic/versions/0001_schema.py (undone by 0001_schema.down.sql).
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
