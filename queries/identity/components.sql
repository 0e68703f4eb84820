-- Every usable identifier's component: the contracted label of its previous component (or of
-- itself when it is new or the run is a full rebuild); an identifier no round touched keeps
-- that starting label.
SELECT n.node,
       COALESCE(c.label, COALESCE(p.component, n.node)) AS component
FROM id_nodes n
LEFT JOIN prev_graph p ON n.node = p.node
LEFT JOIN cc_labels c ON COALESCE(p.component, n.node) = c.node
