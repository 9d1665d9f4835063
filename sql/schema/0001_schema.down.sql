-- Undo 0001_schema.sql. The extensions stay: other schemas may use them.
DROP TABLE IF EXISTS embedding_failure;
DROP TABLE IF EXISTS prompt_embedding;
DROP TABLE IF EXISTS painting_embedding;
DROP TABLE IF EXISTS painting;
DROP TABLE IF EXISTS embedding_model;
DROP FUNCTION IF EXISTS parse_year_range(text);
DROP FUNCTION IF EXISTS prompt_key(text);
DROP TYPE IF EXISTS search_result;
