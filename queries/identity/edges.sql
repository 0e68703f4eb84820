-- The identity graph's edges: an event links every usable identifier it carries to one of
-- them (the smallest node code), so an event with k identifiers adds k - 1 edges (a star, not
-- a clique). Edges are deduplicated and always written with a < b. The per-event hubs are
-- the join's first side (a hash join holds it in memory): one row per event, against one per
-- identifier occurrence.
WITH usable AS (
    SELECT message_id, node
    FROM id_occurrences
    WHERE violation IS NULL
),
hubs AS (
    SELECT message_id, MIN(node) AS hub
    FROM usable
    GROUP BY message_id
)
SELECT DISTINCT h.hub AS a, u.node AS b
FROM hubs h
JOIN usable u ON u.message_id = h.message_id
WHERE u.node <> h.hub
