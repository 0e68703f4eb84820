-- The profiles the audiences read: every resolved profile with the two traits they use
-- (total_revenue from the traits stage, orders_90d over the resolved events).
CREATE TABLE bench_profiles AS
SELECT p.profile_id, t.total_revenue, coalesce(o.orders_90d, 0) AS orders_90d
FROM (SELECT DISTINCT profile_id FROM resolved) p
LEFT JOIN traits t USING (profile_id)
LEFT JOIN (
    SELECT profile_id, count(*) AS orders_90d FROM resolved
    WHERE event = 'Order Completed' AND TRY_CAST("timestamp" AS TIMESTAMPTZ) > TIMESTAMPTZ '2026-08-03 00:00:00+00'
    GROUP BY profile_id
) o USING (profile_id);
