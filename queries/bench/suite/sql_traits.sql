-- Stage 4b, the 2 SQL traits of benches/space/queries, over the deduplicated events, merged
-- into profiles through the identifiers (a user_id or anonymous_id node's profile).
CREATE TABLE sql_traits AS
WITH lifetime AS (
    SELECT user_id, count(*) AS lifetime_orders,
        sum(TRY_CAST(json_extract_string(CASE WHEN json_valid(properties) THEN properties END, '$.revenue') AS DOUBLE)) AS lifetime_revenue
    FROM events WHERE type = 'track' AND event = 'Order Completed' AND user_id IS NOT NULL
    GROUP BY user_id
),
anon AS (
    SELECT anonymous_id, count(*) AS anonymous_events, count(DISTINCT event) AS anonymous_event_kinds
    FROM events WHERE anonymous_id IS NOT NULL GROUP BY anonymous_id
)
SELECT coalesce(a.profile_id, b.profile_id) AS profile_id,
    a.lifetime_orders, a.lifetime_revenue, b.anonymous_events, b.anonymous_event_kinds
FROM (
    SELECT np.profile_id, l.lifetime_orders, l.lifetime_revenue FROM lifetime l
    JOIN node_profile np ON np.node = 'user_id:' || trim(l.user_id)
) a FULL JOIN (
    -- Several anonymous ids on one profile: the smallest id's row wins, as Cohort's merge does.
    SELECT np.profile_id, arg_min(x.anonymous_events, x.anonymous_id) AS anonymous_events,
        arg_min(x.anonymous_event_kinds, x.anonymous_id) AS anonymous_event_kinds
    FROM anon x JOIN node_profile np ON np.node = 'anonymous_id:' || trim(x.anonymous_id)
    GROUP BY np.profile_id
) b USING (profile_id);
