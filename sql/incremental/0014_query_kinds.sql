-- Revision 0014: recall measured per kind of query. A measurement keeps, beside the stored
-- paintings' figures it always had, what each kind of query the default serves gets
-- (stored paintings, new vectors, prompts: mean, 5th percentile, share under 0.5, p50,
-- how often the guard answers exactly, and the kind's guard threshold), written by
-- record_query_kinds() and shown by index_tuning_status(). NULL for older measurements.
ALTER TABLE index_tuning ADD COLUMN kinds jsonb;
