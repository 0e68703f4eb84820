-- Identifiers with their profile key and when they were seen, counting only the events in
-- which the identifier was kept (not dropped by a limit).
SELECT k.profile_key,
       o.node,
       o.id_type,
       MIN(o.id_value) AS id_value,
       MIN(o.rank) AS rank,
       MIN(o.timestamp) AS first_seen,
       MAX(o.timestamp) AS last_seen
FROM id_occurrences o
JOIN id_node_keys k ON o.node = k.node
LEFT JOIN id_dropped d ON o.message_id = d.message_id AND o.node = d.node
WHERE o.violation IS NULL AND d.node IS NULL
GROUP BY k.profile_key, o.node, o.id_type
