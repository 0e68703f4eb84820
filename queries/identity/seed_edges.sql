-- Incremental runs: the graph to contract is this run's edges with each end replaced by the
-- component it had in the previous run (a new identifier stands for itself). Edges inside one
-- old component disappear, so the rounds only see components that new edges reach.
-- On a full rebuild `prev_graph` is empty and this is the edge list itself.
SELECT DISTINCT LEAST(la, lb) AS a, GREATEST(la, lb) AS b
FROM (
    SELECT COALESCE(pa.component, e.a) AS la,
           COALESCE(pb.component, e.b) AS lb
    FROM id_edges e
    LEFT JOIN prev_graph pa ON e.a = pa.node
    LEFT JOIN prev_graph pb ON e.b = pb.node
) AS mapped
WHERE la <> lb
