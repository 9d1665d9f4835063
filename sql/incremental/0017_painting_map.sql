-- Revision 0017: the map. Each painting of a model gets a 2-D position (x, y in [0, 1],
-- written by `pgallery map layout`, pgallery/map_layout.py) and a sampling rank: a random
-- permutation of the laid-out paintings, new paintings appended at the end. A viewport
-- shows the paintings of lowest rank inside it, so a zoomed-out view is a uniform sample
-- of the collection and zooming in reveals the rest.
--
-- level is the rank's "zoom level": level 0 holds the first 256 ranks and level l the
-- ranks below 256 * 4^l, so each level has three times the paintings of all those before
-- it. tile puts each level into a band of its own (x shifted by 4 * level), and one GiST
-- index over tile answers "the paintings of level l inside this box" with a scan of that
-- band alone: map_points() walks the levels from 0 up and stops once it has its limit,
-- so a request reads at most about four times its limit, however far in or out it is.
CREATE TABLE painting_map (
    model        text NOT NULL REFERENCES embedding_model (name) ON DELETE CASCADE
                      ON UPDATE CASCADE,
    painting_id  bigint NOT NULL REFERENCES painting ON DELETE CASCADE,
    x            float8 NOT NULL CHECK (x BETWEEN 0 AND 1),
    y            float8 NOT NULL CHECK (y BETWEEN 0 AND 1),
    sample_rank  integer NOT NULL CHECK (sample_rank >= 0),
    -- 'layout': by the last full layout; 'neighbours': placed later beside its nearest
    -- laid-out paintings (the others did not move)
    placed_by    text NOT NULL CHECK (placed_by IN ('layout', 'neighbours')),
    placed_at    timestamptz NOT NULL DEFAULT now(),
    level        smallint GENERATED ALWAYS AS (
                     CASE WHEN sample_rank < 256 THEN 0
                          ELSE ceil(log(4, (sample_rank + 1) / 256.0))::smallint END
                 ) STORED,
    tile         point GENERATED ALWAYS AS (
                     point(x + 4 * CASE WHEN sample_rank < 256 THEN 0
                                        ELSE ceil(log(4, (sample_rank + 1) / 256.0)) END,
                           y)
                 ) STORED,
    PRIMARY KEY (model, painting_id)
);
CREATE INDEX painting_map_tile ON painting_map USING gist (tile);
CREATE INDEX painting_map_painting ON painting_map (painting_id);     -- ON DELETE CASCADE
CREATE INDEX painting_map_rank ON painting_map (model, sample_rank);  -- the last rank

GRANT SELECT ON painting_map TO pgallery_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON painting_map TO pgallery_writer;
