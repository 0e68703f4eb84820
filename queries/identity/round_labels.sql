-- After the last round, labels flow back one round at a time: a node's component is its
-- representative's component from the next round, or the representative itself when that
-- one had no edges left (its component finished in this round).
SELECT r.node, COALESCE(l.label, r.rep) AS label
FROM cc_reps r
LEFT JOIN cc_labels l ON r.rep = l.node
