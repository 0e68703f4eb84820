-- Stage 1 of the end-to-end DuckDB peer (benches/suite.rs, driven by queries/bench/suite_duckdb.py):
-- the events, deduplicated by message_id, the earliest by timestamp (ties: the first row),
-- as Cohort's events stage does. Rows whose timestamp is not a time are dropped (Cohort
-- counts them as bad rows); so are rows after as-of.
CREATE TABLE events AS
SELECT * EXCLUDE (rn) FROM (
    SELECT
        message_id, type, event, user_id, anonymous_id, "timestamp",
        TRY_CAST("timestamp" AS TIMESTAMPTZ) AS ts, properties, traits, context,
        row_number() OVER (PARTITION BY message_id ORDER BY TRY_CAST("timestamp" AS TIMESTAMPTZ)) AS rn
    FROM read_parquet('@DATA@/*/*.parquet', hive_partitioning = true)
    WHERE message_id IS NOT NULL
)
WHERE rn = 1 AND ts IS NOT NULL AND ts <= TIMESTAMPTZ '2026-11-01 00:00:00+00'
