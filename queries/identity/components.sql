-- Every usable identifier's component, labelled by the smallest node code in it. The
-- contraction gives each identifier the contracted label of its previous component (or of
-- itself when it is new or the run is a full rebuild; an identifier no round touched keeps
-- that starting label), which is an arbitrary member; one aggregation over the nodes turns it
-- into the smallest member, so the published label depends only on the graph (any SQL
-- rendition of the stage, e.g. `cohort compile --script`, gives the same one). Incremental
-- runs seed from these labels, which is correct with any labels.
WITH contracted AS (
    SELECT n.node,
           COALESCE(c.label, COALESCE(p.component, n.node)) AS label
    FROM id_nodes n
    LEFT JOIN prev_graph p ON n.node = p.node
    LEFT JOIN cc_labels c ON COALESCE(p.component, n.node) = c.node
),
smallest AS (
    SELECT label, MIN(node) AS component
    FROM contracted
    GROUP BY label
)
SELECT t.node, s.component
FROM contracted t
JOIN smallest s ON t.label = s.label
