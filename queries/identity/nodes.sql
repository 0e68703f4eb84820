-- Every usable identifier once: its node code, type, value and rank. `spellings` counts the
-- distinct values behind one code (more than one is a 64-bit code collision, checked by the
-- engine).
SELECT node,
       id_type,
       MIN(id_value) AS id_value,
       COUNT(DISTINCT id_value) AS spellings,
       MIN(rank) AS rank
FROM id_occurrences
WHERE violation IS NULL
GROUP BY node, id_type
