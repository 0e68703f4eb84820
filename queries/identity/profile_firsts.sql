-- Per profile key, its earliest identifier (first seen, then priority, type, value): a new
-- profile is named after it, which makes ids the same on every rebuild.
SELECT profile_key, node, first_seen, rank, id_type, id_value
FROM (
    SELECT profile_key, node, first_seen, rank, id_type, id_value,
           ROW_NUMBER() OVER (
               PARTITION BY profile_key
               ORDER BY first_seen, rank, id_type, id_value
           ) AS rn
    FROM id_keyed
) AS ranked
WHERE rn = 1
