-- Applied by alembic/versions/0012_restore_hnsw_index.py after
-- functions/80_restore_hnsw_index.sql: the writer's loads may call it, nobody else.
ALTER PROCEDURE restore_hnsw_index SECURITY DEFINER;
REVOKE EXECUTE ON PROCEDURE restore_hnsw_index FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE restore_hnsw_index TO pgallery_writer;
