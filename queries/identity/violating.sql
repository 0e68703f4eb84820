-- Components that hold more values of some type than its limit allows. Only these need the
-- sequential replay: in any other component no event can ever break a limit, so the whole
-- component is one profile, exactly as the sequential algorithm would build it.
SELECT DISTINCT component
FROM (
    SELECT c.component, n.id_type, t.id_limit, COUNT(*) AS n_values
    FROM id_components c
    JOIN id_nodes n ON c.node = n.node
    JOIN id_types t ON n.id_type = t.id_type
    GROUP BY c.component, n.id_type, t.id_limit
) AS per_type
WHERE n_values > id_limit
