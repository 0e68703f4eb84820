SELECT anonymous_id, count(*) AS anonymous_events, count(DISTINCT event) AS anonymous_event_kinds
FROM web
WHERE anonymous_id IS NOT NULL
GROUP BY anonymous_id
