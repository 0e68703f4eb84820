SELECT user_id, count(*) AS lifetime_orders
FROM web
WHERE type = 'track' AND event = 'Order Completed' AND user_id IS NOT NULL
GROUP BY user_id
