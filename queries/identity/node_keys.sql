-- Each identifier's profile, as a key: the component itself, or inside a violating component
-- the profile the replay put it in. Identifiers the replay dropped everywhere get none.
SELECT c.node,
       CASE WHEN v.component IS NULL THEN c.component ELSE r.profile_key END AS profile_key
FROM id_components c
LEFT JOIN id_violating v ON c.component = v.component
LEFT JOIN id_replayed r ON c.node = r.node
WHERE v.component IS NULL OR r.node IS NOT NULL
