-- Back to 0014: no map.
DROP TABLE painting_map;
