-- The largest components, for the run record: size and one identifier to look them up by.
SELECT c.component,
       COUNT(*) AS identifiers,
       MIN(n.id_type || ':' || n.id_value) AS example
FROM id_components c
JOIN id_nodes n ON c.node = n.node
GROUP BY c.component
ORDER BY identifiers DESC, example
LIMIT 5
