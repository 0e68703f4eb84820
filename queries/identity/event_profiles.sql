-- Every event's profile: the profile of its highest-priority usable identifier (which the
-- limit rule never drops). The tables with a row per identifier come first (a hash join
-- holds its first side in memory; the events are many more).
SELECT t.message_id, p.profile_id
FROM id_profile_ids p
JOIN id_node_keys k ON k.profile_key = p.profile_key
JOIN (
    SELECT message_id, FIRST_VALUE(node ORDER BY rank, id_value) AS node
    FROM id_occurrences
    WHERE violation IS NULL
    GROUP BY message_id
) AS t ON t.node = k.node
