-- The parameters every search_* function takes after its query argument, in this order,
-- written once: {{search_parameters}} puts this list into each function's signature,
-- {{search_request_fields}} makes it the fields of type search_request, and
-- {{search_request}} gathers a call's arguments into one search_request value
-- (cli/pgallery/migrations.py fills them). Add a parameter here, then use it where the
-- request is read (nearest_paintings); psql callers name it like the others.
-- One parameter a line: name type DEFAULT value, with a comma after each but the last.
    k integer DEFAULT 10,
    author text DEFAULT NULL,
    technique text DEFAULT NULL,
    school text DEFAULT NULL,
    painting_type text DEFAULT NULL,
    timeframe text DEFAULT NULL,
    year_from integer DEFAULT NULL,
    year_to integer DEFAULT NULL,
    model text DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    probes integer DEFAULT NULL,
    exact boolean DEFAULT NULL,
    min_similarity double precision DEFAULT NULL,
    order_by text DEFAULT 'similarity',
    page integer DEFAULT 1
