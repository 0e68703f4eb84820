-- Stage 2 (identity), one round of min-label propagation; the driver repeats it until no
-- label changes (rounds = the graph's diameter, at most).
CREATE OR REPLACE TABLE labels2 AS
SELECT l.node, least(l.label, coalesce(m.label, l.label)) AS label
FROM labels l LEFT JOIN (
    SELECT s.a AS node, min(n.label) AS label FROM sym s JOIN labels n ON n.node = s.b GROUP BY s.a
) m USING (node);
