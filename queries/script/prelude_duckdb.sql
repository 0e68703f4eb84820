-- Helpers of a DuckDB script (`cohort compile --script --dialect duckdb`). Statements are
-- separated by a line holding only `;`.
-- Times without an offset are UTC, as in Cohort.
SET TimeZone = 'UTC'
;
-- cohort_mode_pick(values, min_frequency): the most frequent non-null value, ties broken by
-- the smallest value, or null when it occurs fewer than min_frequency times.
CREATE OR REPLACE MACRO cohort_mode_pick(vs, k) AS (
    SELECT v FROM (SELECT unnest(vs) AS v) AS t
    WHERE v IS NOT NULL
    GROUP BY v
    HAVING count(*) >= k
    ORDER BY count(*) DESC, v
    LIMIT 1
)
;
-- cohort_sorted_distinct(values): the distinct non-null values, sorted; null when none.
CREATE OR REPLACE MACRO cohort_sorted_distinct(vs) AS
    CASE WHEN len(list_distinct(vs)) = 0 THEN NULL ELSE list_sort(list_distinct(vs)) END
;
-- cohort_is_time(text): an RFC 3339 time such as 2026-01-31T09:00:00Z.
CREATE OR REPLACE MACRO cohort_is_time(s) AS
    coalesce(regexp_full_match(s, '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})')
             AND try_cast(s AS TIMESTAMPTZ) IS NOT NULL, false)
;
-- cohort_json_kind(json, key): what the top-level key holds (null, bool, int, float,
-- timestamp, string, object, array), or null when the key is absent.
CREATE OR REPLACE MACRO cohort_json_kind(j, k) AS
    CASE json_type(j, '$."' || replace(k, '"', '\"') || '"')
        WHEN 'NULL' THEN 'null'
        WHEN 'BOOLEAN' THEN 'bool'
        WHEN 'BIGINT' THEN 'int'
        WHEN 'UBIGINT' THEN 'int'
        WHEN 'DOUBLE' THEN 'float'
        WHEN 'ARRAY' THEN 'array'
        WHEN 'OBJECT' THEN 'object'
        WHEN 'VARCHAR' THEN CASE
            WHEN cohort_is_time(json_extract_string(j, '$."' || replace(k, '"', '\"') || '"'))
            THEN 'timestamp' ELSE 'string' END
    END
