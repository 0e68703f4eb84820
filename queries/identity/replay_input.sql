-- The events of violating components, in the order the sequential rule processes them:
-- (timestamp, message_id), each event's identifiers by priority then value. The few
-- violating components come first (a hash join holds its first side in memory).
SELECT c.component, o.message_id, o.timestamp, o.node, o.rank, o.id_type, o.id_value
FROM id_violating v
JOIN id_components c ON c.component = v.component
JOIN id_occurrences o ON o.node = c.node
WHERE o.violation IS NULL
ORDER BY c.component, o.timestamp, o.message_id, o.rank, o.id_value
