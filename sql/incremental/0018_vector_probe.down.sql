-- The probe index of new-vector queries (built at run time by build_vector_probe_index,
-- 51_vector_probe_index.sql): the layer below neither builds nor reads it.
DROP INDEX IF EXISTS painting_embedding_half_ivfflat;
