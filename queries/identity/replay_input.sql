-- The events of violating components, in the order the sequential rule processes them:
-- (timestamp, message_id), each event's identifiers by priority then value.
SELECT c.component, o.message_id, o.timestamp, o.node, o.rank, o.id_type, o.id_value
FROM id_occurrences o
JOIN id_components c ON o.node = c.node
JOIN id_violating v ON c.component = v.component
WHERE o.violation IS NULL
ORDER BY c.component, o.timestamp, o.message_id, o.rank, o.id_value
