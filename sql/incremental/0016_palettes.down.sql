-- Back to 0015: palettes are no longer kept (they are recomputed from the images by
-- `pgallery palettes backfill` after the next upgrade).
DROP TABLE painting_palette;
