-- Components that may break a limit when some limits count per period (`5 weekly`): a
-- superset of those that do, which the replay settles exactly. Without a dropped identifier,
-- every value is added to its profile by its first event, so a component where no window of a
-- type's length holds more first sightings than the limit can never break it. Any such window
-- lies within two consecutive buckets of that length, so the check is on each bucket and
-- each bucket with the next. A limit without a period has one bucket: the plain count.
-- Buckets are whole seconds since 1970 divided by the window's length in seconds (window_s).
WITH firsts AS (
    SELECT node, MIN(timestamp) AS first_seen
    FROM id_occurrences
    WHERE violation IS NULL
    GROUP BY node
),
per_bucket AS (
    SELECT c.component, n.id_type, t.id_limit,
           CASE WHEN t.window_s IS NULL THEN 0
                ELSE floor(to_unixtime(f.first_seen) / t.window_s) END AS bucket,
           COUNT(*) AS n_values
    FROM id_components c
    JOIN id_nodes n ON c.node = n.node
    JOIN id_types t ON n.id_type = t.id_type
    JOIN firsts f ON c.node = f.node
    GROUP BY 1, 2, 3, 4
),
with_next AS (
    SELECT component, id_limit, bucket, n_values,
           LEAD(bucket) OVER (PARTITION BY component, id_type ORDER BY bucket) AS next_bucket,
           LEAD(n_values) OVER (PARTITION BY component, id_type ORDER BY bucket) AS next_values
    FROM per_bucket
)
SELECT DISTINCT component
FROM with_next
WHERE n_values > id_limit
   OR (next_bucket = bucket + 1 AND n_values + next_values > id_limit)
