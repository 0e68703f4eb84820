-- Per profile key, the previous run's profiles it contains, each with its earliest identifier
-- in this run: the profile keeps the id of the oldest one, the others are merged into it.
SELECT profile_key, profile_id, first_seen, rank, id_type, id_value
FROM (
    SELECT k.profile_key, p.profile_id, k.first_seen, k.rank, k.id_type, k.id_value,
           ROW_NUMBER() OVER (
               PARTITION BY k.profile_key, p.profile_id
               ORDER BY k.first_seen, k.rank, k.id_type, k.id_value
           ) AS rn
    FROM id_keyed k
    JOIN prev_identities p ON k.id_type = p.id_type AND k.id_value = p.id_value
) AS ranked
WHERE rn = 1
