-- Custom traits present in the data: every top-level key of the traits of {call} calls, with
-- each JSON kind its values had (`int`, `float`, `bool`, `string`, `null`, `object`, `array`).
-- The engine picks each trait's column type from these kinds.
SELECT key, cohort_json_kind(traits, key) AS kind
FROM (
    SELECT traits, unnest(cohort_json_keys(traits)) AS key
    FROM {table}
    WHERE type = '{call}' AND traits IS NOT NULL
) AS k
GROUP BY key, cohort_json_kind(traits, key)
ORDER BY key, kind
