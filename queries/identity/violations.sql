-- The published `identity_violations` table: every blocked or malformed identifier and every
-- identifier a limit dropped, with its event, the rule, and the profile the event went to.
SELECT o.message_id, o.timestamp, o.id_type, LEFT(o.id_value, 1000) AS id_value,
       o.violation AS rule, o.violation_detail AS detail, e.profile_id
FROM id_occurrences o
LEFT JOIN id_event_profiles e ON o.message_id = e.message_id
WHERE o.violation IS NOT NULL
UNION ALL
SELECT d.message_id, d.timestamp, d.id_type, d.id_value,
       'limit' AS rule, d.detail, e.profile_id
FROM id_dropped d
LEFT JOIN id_event_profiles e ON d.message_id = e.message_id
