-- Which profile belongs to which account, from every event (a run that evaluates only the
-- touched profiles holds only their events in `profile_events`): the same rows as
-- account_links.sql.
SELECT DISTINCT e.group_id AS account_id, p.profile_id
FROM events e
JOIN event_profiles p ON e.message_id = p.message_id
WHERE e.type = 'group' AND e.group_id IS NOT NULL
