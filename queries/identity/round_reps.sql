-- Randomized contraction, one round, step 1 (Bögeholz, Brand, Todor, ICDE 2020): every node
-- of the current edge list picks as representative the node with the smallest hash among
-- itself and its neighbours. cohort_mix is a bijection of the 64-bit node code, reseeded
-- every round ({seed}), so cohort_unmix turns the smallest hash back into that node.
SELECT node,
       cohort_unmix(LEAST(cohort_mix(node, {seed}), MIN(cohort_mix(nbr, {seed}))), {seed}) AS rep
FROM (
    SELECT a AS node, b AS nbr FROM cc_edges
    UNION ALL
    SELECT b AS node, a AS nbr FROM cc_edges
) AS adjacency
GROUP BY node
