"""Getting paintings into the database: readers for each input kind, and the batch writer."""
