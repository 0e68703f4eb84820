-- The helpers of a Spark or Databricks SQL script, as temporary SQL functions (after the
-- settings of prelude_spark.sql or prelude_databricks.sql). Statements are separated by a line
-- holding only `;`.
-- cohort_mode_pick(values, min_frequency): the most frequent non-null value, ties broken by
-- the smallest value, or null when it occurs fewer than min_frequency times.
CREATE OR REPLACE TEMPORARY FUNCTION cohort_mode_pick(vs ARRAY<STRING>, k BIGINT)
RETURNS STRING
RETURN try_element_at(
    filter(
        array_sort(transform(array_distinct(filter(vs, v -> v IS NOT NULL)),
            v -> named_struct('n', -size(filter(vs, w -> w = v)), 'v', v))),
        s -> -s.n >= k),
    1).v
;
-- cohort_sorted_distinct(values): the distinct non-null values, sorted; null when none.
CREATE OR REPLACE TEMPORARY FUNCTION cohort_sorted_distinct(vs ARRAY<STRING>)
RETURNS ARRAY<STRING>
RETURN CASE WHEN vs IS NULL OR size(filter(vs, v -> v IS NOT NULL)) = 0 THEN NULL
            ELSE sort_array(array_distinct(filter(vs, v -> v IS NOT NULL))) END
;
-- cohort_is_time(text): an RFC 3339 time such as 2026-01-31T09:00:00Z.
CREATE OR REPLACE TEMPORARY FUNCTION cohort_is_time(s STRING)
RETURNS BOOLEAN
RETURN coalesce(
    s RLIKE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$'
    AND try_to_timestamp(s) IS NOT NULL,
    false)
;
-- cohort_json_kind(json, key): what the top-level key holds (null, bool, int, float,
-- timestamp, string, object, array), or null when the key is absent. The value's type comes
-- from Spark's VARIANT; its text (get_json_object) tells an integer from a fraction.
CREATE OR REPLACE TEMPORARY FUNCTION cohort_json_kind(j STRING, k STRING)
RETURNS STRING
RETURN CASE schema_of_variant(from_json(j, 'map<string,variant>')[k])
    WHEN 'VOID' THEN 'null'
    WHEN 'BOOLEAN' THEN 'bool'
    WHEN 'STRING' THEN CASE
        WHEN cohort_is_time(get_json_object(j, concat('$[''', k, ''']')))
        THEN 'timestamp' ELSE 'string' END
    ELSE CASE
        WHEN from_json(j, 'map<string,variant>')[k] IS NULL THEN NULL
        WHEN schema_of_variant(from_json(j, 'map<string,variant>')[k]) LIKE 'OBJECT%' THEN 'object'
        WHEN schema_of_variant(from_json(j, 'map<string,variant>')[k]) LIKE 'ARRAY%' THEN 'array'
        WHEN get_json_object(j, concat('$[''', k, ''']')) RLIKE '^-?[0-9]+$' THEN 'int'
        ELSE 'float' END
END
