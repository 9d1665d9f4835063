-- Revision 0016: every painting's palette, its dominant colours, for search_by_colour.
--
-- One row per painting: up to five colours in CIE Lab (D65) with their shares of the
-- picture, largest first, computed from the pixels by the loader or by `pgallery palettes
-- backfill` (cli/pgallery/palette.py: k-means in Lab on a thumbnail). content_hash is the
-- sha256 of the image bytes it was computed from, so a changed image gets a new palette.
-- histogram is the palette spread over 216 fixed anchor colours (palette_histogram() in
-- sql/idempotent/26_search_by_colour.sql; the loader sends it, the trigger fills it):
-- a fixed-length vector whose HNSW index finds candidates that search_by_colour then
-- re-ranks exactly on the colours themselves.
CREATE TABLE painting_palette (
    painting_id  bigint PRIMARY KEY REFERENCES painting ON DELETE CASCADE,
    lab          real[] NOT NULL,   -- n x 3: L*, a*, b* of each colour, largest share first
    shares       real[] NOT NULL,   -- n shares of the picture, summing to 1
    histogram    vector(216) NOT NULL,
    content_hash text,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT painting_palette_shape CHECK (
        array_ndims(lab) = 2 AND array_length(lab, 2) = 3
        AND array_ndims(shares) = 1 AND array_length(lab, 1) = array_length(shares, 1)
        AND array_length(shares, 1) BETWEEN 1 AND 5)
);
CREATE INDEX painting_palette_histogram ON painting_palette
    USING hnsw (histogram vector_cosine_ops);

GRANT SELECT ON painting_palette TO pgallery_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON painting_palette TO pgallery_writer;
