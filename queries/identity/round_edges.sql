-- Randomized contraction, one round, step 2: every edge is moved onto the representatives of
-- its two ends. Edges that fall inside one representative vanish, and so does every component
-- that has contracted to a single node: it is finished and retired from later rounds.
SELECT DISTINCT LEAST(ra.rep, rb.rep) AS a, GREATEST(ra.rep, rb.rep) AS b
FROM cc_edges e
JOIN cc_reps ra ON e.a = ra.node
JOIN cc_reps rb ON e.b = rb.node
WHERE ra.rep <> rb.rep
