-- The settings a BigQuery script (`cohort compile --script --dialect bigquery`, one
-- multi-statement query) starts with; its helper functions follow. Statements are separated
-- by a line holding only `;`. The tables go to the query's default dataset: run it with one
-- (`bq query --dataset_id=...`) or put `SET @@dataset_id = '...';` first.
-- Times without an offset are UTC, as in Cohort.
SET @@time_zone = 'UTC'
;
-- cohort_array_sort(values): the values in ascending order (an aggregate may not stand in a
-- subquery of the query that groups it, so the subquery is this function's).
CREATE TEMP FUNCTION cohort_array_sort(vs ANY TYPE)
AS (ARRAY(SELECT v FROM UNNEST(vs) AS v ORDER BY v))
