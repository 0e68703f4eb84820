-- Helpers of a PostgreSQL script (`cohort compile --script --dialect postgres`). Statements
-- are separated by a line holding only `;`.
-- Times without an offset are UTC, as in Cohort.
SET TIME ZONE 'UTC'
;
-- cohort_json_valid(text): true for null or a JSON object.
CREATE OR REPLACE FUNCTION cohort_json_valid(t text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t IS NULL OR jsonb_typeof(t::jsonb) = 'object';
EXCEPTION WHEN others THEN
    RETURN false;
END
$$
;
-- cohort_is_time(text): an RFC 3339 time such as 2026-01-31T09:00:00Z.
CREATE OR REPLACE FUNCTION cohort_is_time(s text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF s IS NULL OR s !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$' THEN
        RETURN false;
    END IF;
    PERFORM s::timestamptz;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END
$$
;
-- cohort_json_kind(json, key): what the top-level key holds (null, bool, int, float,
-- timestamp, string, object, array), or null when the key is absent.
CREATE OR REPLACE FUNCTION cohort_json_kind(j text, k text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE jsonb_typeof(j::jsonb -> k)
    WHEN 'null' THEN 'null'
    WHEN 'boolean' THEN 'bool'
    WHEN 'number' THEN CASE WHEN (j::jsonb ->> k) ~ '^-?[0-9]+$' THEN 'int' ELSE 'float' END
    WHEN 'array' THEN 'array'
    WHEN 'object' THEN 'object'
    WHEN 'string' THEN CASE WHEN cohort_is_time(j::jsonb ->> k) THEN 'timestamp' ELSE 'string' END
END
$$
;
-- cohort_mode_pick(values, min_frequency): the most frequent non-null value, ties broken by
-- the smallest value, or null when it occurs fewer than min_frequency times.
CREATE OR REPLACE FUNCTION cohort_mode_pick(vs text[], k bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT v FROM unnest(vs) AS v
WHERE v IS NOT NULL
GROUP BY v
HAVING count(*) >= k
ORDER BY count(*) DESC, v COLLATE "C"
LIMIT 1
$$
;
-- cohort_sorted_distinct(values): the distinct non-null values, sorted; null when none.
CREATE OR REPLACE FUNCTION cohort_sorted_distinct(vs text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
SELECT array_agg(DISTINCT v COLLATE "C" ORDER BY v COLLATE "C") FROM unnest(vs) AS v WHERE v IS NOT NULL
$$
;
-- cohort_try_cast(text, NULL::type): the text as a value of the type, or null when it is not
-- one (DataFusion's TRY_CAST).
CREATE OR REPLACE FUNCTION cohort_try_cast(t text, v anyelement) RETURNS anyelement
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT %L::%s', t, pg_typeof(v)) INTO v;
    RETURN v;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$
