SELECT user_id, count(*) AS lifetime_orders, sum(TRY_CAST(cohort_json_get(properties, 'revenue') AS DOUBLE)) AS lifetime_revenue
FROM web
WHERE type = 'track' AND event = 'Order Completed' AND user_id IS NOT NULL
GROUP BY user_id
