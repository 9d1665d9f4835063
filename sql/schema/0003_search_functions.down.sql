-- Undo alembic/versions/0003_search_functions.py: drop every function in sql/functions/.
DROP FUNCTION IF EXISTS search_hybrid, search_by_text, search_by_image, search_by_vector;
DROP FUNCTION IF EXISTS nearest_paintings;
DROP FUNCTION IF EXISTS merge_staged_paintings, create_painting_staging;
DROP PROCEDURE IF EXISTS build_ivfflat_index, drop_ivfflat_index;
DROP FUNCTION IF EXISTS register_model, use_model;
DROP FUNCTION IF EXISTS store_prompt_embedding, prompt_vector;
DROP FUNCTION IF EXISTS ef_search_setting, probes_setting, exact_setting;
DROP FUNCTION IF EXISTS to_column_vector, check_search_args, resolve_model;
DROP FUNCTION IF EXISTS painting_matches, like_pattern;
