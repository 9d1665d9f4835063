-- Back to 0013: measurements keep the stored paintings' figures only, and the guard
-- thresholds of the other kinds are no longer read.
ALTER TABLE index_tuning DROP COLUMN kinds;
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I RESET pgallery.lost_query_distance_vector',
                   current_database());
    EXECUTE format('ALTER DATABASE %I RESET pgallery.lost_query_distance_text',
                   current_database());
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;
