-- Every event's profile: the profile of its highest-priority usable identifier (which the
-- limit rule never drops).
SELECT t.message_id, p.profile_id
FROM (
    SELECT message_id, FIRST_VALUE(node ORDER BY rank, id_value) AS node
    FROM id_occurrences
    WHERE violation IS NULL
    GROUP BY message_id
) AS t
JOIN id_node_keys k ON t.node = k.node
JOIN id_profile_ids p ON k.profile_key = p.profile_key
