-- Back to 0016: no map.
DROP TABLE painting_map;
