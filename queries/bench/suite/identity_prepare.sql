-- Stage 2 (identity), preparation. Every identifier occurrence of every event, as identity.yaml
-- of benches/space says: user_id (userId), email (traits.email, context.traits.email,
-- lower-cased), anonymous_id (anonymousId); values trimmed; Segment's default blocked values
-- and the pattern ^[0-]*$ dropped. A node is 'type:value'. Edges: a star per event from its
-- first node to the others.
CREATE TABLE occ AS
SELECT DISTINCT message_id, ts, id_type, id_type || ':' || id_value AS node, rank
FROM (
    SELECT message_id, ts, 'user_id' AS id_type, trim(user_id) AS id_value, 0 AS rank FROM events
    UNION ALL
    SELECT message_id, ts, 'email', lower(trim(json_extract_string(CASE WHEN json_valid(traits) THEN traits END, '$.email'))), 1 FROM events
    UNION ALL
    SELECT message_id, ts, 'email', lower(trim(json_extract_string(CASE WHEN json_valid(context) THEN context END, '$.traits.email'))), 1 FROM events
    UNION ALL
    SELECT message_id, ts, 'anonymous_id', trim(anonymous_id), 2 FROM events
)
WHERE id_value IS NOT NULL
    AND lower(id_value) NOT IN ('', 'null', 'undefined', 'anonymous', '-1', '0', 'nan', 'none', 'unknown')
    AND NOT regexp_full_match(id_value, '[0-]*');

CREATE TABLE edges AS
SELECT DISTINCT a, b FROM (
    SELECT f.node AS a, o.node AS b
    FROM occ o JOIN (SELECT message_id, min(node) AS node FROM occ GROUP BY message_id) f
        USING (message_id)
    WHERE o.node <> f.node
);
-- Both directions, and every node labelled by itself to start.
CREATE TABLE sym AS SELECT a, b FROM edges UNION ALL SELECT b, a FROM edges;
CREATE TABLE labels AS SELECT DISTINCT node, node AS label FROM occ;
