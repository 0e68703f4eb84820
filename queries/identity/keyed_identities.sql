-- Identifiers with their profile key and when they were seen, counting only the events in
-- which the identifier was kept (not dropped by a limit). The tables with a row per
-- identifier (or per dropped one) come first: a hash join holds its first side in memory,
-- and the occurrences have a row per event. The dropped ones' columns are renamed: with the
-- same names on both sides, DataFusion 55 pushed `d.node IS NULL` below this outer join onto
-- the occurrences' `node`, and every row was lost.
SELECT x.profile_key,
       x.node,
       x.id_type,
       MIN(x.id_value) AS id_value,
       MIN(x.rank) AS rank,
       MIN(x.timestamp) AS first_seen,
       MAX(x.timestamp) AS last_seen
FROM (
    SELECT message_id AS dropped_message_id, node AS dropped_node
    FROM id_dropped
) AS d
RIGHT JOIN (
    SELECT k.profile_key, o.message_id, o.node, o.id_type, o.id_value, o.rank, o.timestamp
    FROM id_node_keys k
    JOIN id_occurrences o ON o.node = k.node
    WHERE o.violation IS NULL
) AS x ON x.message_id = d.dropped_message_id AND x.node = d.dropped_node
WHERE d.dropped_node IS NULL
GROUP BY x.profile_key, x.node, x.id_type
