-- The 30 audiences of benches/audiences.rs, written by hand for DuckDB over the same Parquet
-- files: one boolean column per audience for every profile of @PROFILES@ (profile_id,
-- total_revenue, orders_90d). It gives the same result as Cohort's audience plans
-- (`audiences_plan`) with as-of 2026-11-01T00:00:00Z:
--
-- * a profile is COALESCE(user_id, anonymous_id); the event timestamp is TRY_CAST to
--   TIMESTAMPTZ; a broken JSON object reads as no fields;
-- * within(N) is `as-of - N < ts <= as-of`, between(A, B) is `as-of - B < ts <= as-of - A`;
-- * counts of profiles without events are 0; sums / averages / maxima over no events are
--   null, and a comparison with null is false;
-- * a funnel evaluates the child per parent event (by message id): child events of the same
--   profile strictly after the parent and at most N after it;
-- * nested audiences are the boolean columns of the inner SELECT.
--
-- @DATA@ is the events folder, @PROFILES@ the profiles file. Window starts are literals:
--   72 hours 2026-10-29, 7 days 2026-10-25, 14 days 2026-10-18, 30 days 2026-10-02,
--   90 days 2026-08-03, 180 days 2026-05-05.
WITH e AS (
    SELECT * FROM (
        SELECT
            COALESCE(user_id, anonymous_id) AS profile_id,
            event,
            message_id,
            TRY_CAST("timestamp" AS TIMESTAMPTZ) AS ts,
            CASE WHEN json_valid(properties) THEN properties END AS p
        FROM read_parquet('@DATA@/*/*.parquet', hive_partitioning = true)
        WHERE event IN (
            'Order Completed', 'Product Viewed', 'Products Searched', 'Signed In',
            'Email Opened', 'Email Link Clicked', 'Checkout Started', 'Product Added',
            'Order Refunded', 'Application Opened', 'Cart Viewed', 'Subscription Started',
            'Subscription Cancelled', 'Review Submitted'
        )
    )
    WHERE profile_id IS NOT NULL AND ts <= TIMESTAMPTZ '2026-11-01 00:00:00+00'
),
agg AS (
    SELECT
        profile_id,
        count(*) FILTER (WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS orders_30d,
        count(*) FILTER (WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00') AS orders_90d_e,
        count(*) FILTER (WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00'
            AND TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE) >= 100) AS big_orders_90d,
        count(*) FILTER (WHERE event = 'Order Completed' AND json_extract_string(p, '$.currency') = 'USD') AS usd_orders,
        count(*) FILTER (WHERE event = 'Order Completed') AS orders,
        count(*) FILTER (WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00'
            AND ts <= TIMESTAMPTZ '2026-10-02 00:00:00+00') AS orders_30_90d,
        count(*) FILTER (WHERE event = 'Product Viewed' AND ts > TIMESTAMPTZ '2026-10-25 00:00:00+00') AS views_7d,
        count(*) FILTER (WHERE event = 'Product Viewed' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00'
            AND json_extract_string(p, '$.category') = 'Electronics') AS electronics_views_30d,
        count(*) FILTER (WHERE event = 'Products Searched' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS searches_30d,
        count(*) FILTER (WHERE event = 'Signed In' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS sign_ins_30d,
        count(*) FILTER (WHERE event = 'Signed In' AND ts > TIMESTAMPTZ '2026-10-29 00:00:00+00') AS sign_ins_72h,
        count(*) FILTER (WHERE event = 'Email Opened' AND ts > TIMESTAMPTZ '2026-10-18 00:00:00+00') AS opens_14d,
        count(*) FILTER (WHERE event = 'Email Link Clicked' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS clicks_30d,
        count(*) FILTER (WHERE event = 'Order Refunded' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00') AS refunds_90d,
        count(*) FILTER (WHERE event = 'Order Refunded' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS refunds_30d,
        count(*) FILTER (WHERE event = 'Application Opened' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS app_opens_30d,
        count(*) FILTER (WHERE event = 'Cart Viewed' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00') AS cart_views_30d,
        avg(TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE)) FILTER (
            WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-05-05 00:00:00+00') AS avg_revenue_180d,
        max(TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE)) FILTER (WHERE event = 'Order Completed') AS max_revenue,
        sum(TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE)) FILTER (
            WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00') AS revenue_90d,
        count(*) FILTER (WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-05-05 00:00:00+00'
            AND json_extract_string(p, '$.coupon') IS NOT NULL) AS coupon_orders_180d,
        count(*) FILTER (WHERE event = 'Subscription Started') AS subscriptions,
        count(*) FILTER (WHERE event = 'Subscription Cancelled') AS cancellations,
        count(*) FILTER (WHERE event = 'Review Submitted' AND ts > TIMESTAMPTZ '2026-05-05 00:00:00+00'
            AND TRY_CAST(json_extract_string(p, '$.rating') AS DOUBLE) <= 2) AS bad_reviews_180d
    FROM e
    GROUP BY profile_id
),
-- Funnel: Checkout Started in 30 days without an Order Completed within 7 days after it.
abandon_p AS (
    SELECT message_id, profile_id, ts FROM e
    WHERE event = 'Checkout Started' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00'
),
abandon_c AS (
    SELECT p.message_id, count(c.message_id) AS n
    FROM abandon_p p LEFT JOIN e c
        ON c.profile_id = p.profile_id AND c.event = 'Order Completed'
        AND c.ts > p.ts AND c.ts <= p.ts + INTERVAL 7 DAY
    GROUP BY p.message_id
),
abandon AS (
    SELECT p.profile_id, count(*) FILTER (WHERE coalesce(c.n, 0) = 0) AS v
    FROM abandon_p p LEFT JOIN abandon_c c USING (message_id)
    GROUP BY p.profile_id
),
-- Funnel: Checkout Started in 90 days followed by an Order Completed within 1 day.
convert_p AS (
    SELECT message_id, profile_id, ts FROM e
    WHERE event = 'Checkout Started' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00'
),
convert_c AS (
    SELECT p.message_id, count(c.message_id) AS n
    FROM convert_p p LEFT JOIN e c
        ON c.profile_id = p.profile_id AND c.event = 'Order Completed'
        AND c.ts > p.ts AND c.ts <= p.ts + INTERVAL 1 DAY
    GROUP BY p.message_id
),
converted AS (
    SELECT p.profile_id, count(*) FILTER (WHERE coalesce(c.n, 0) >= 1) AS v
    FROM convert_p p LEFT JOIN convert_c c USING (message_id)
    GROUP BY p.profile_id
),
-- Dynamic reference: Product Viewed in 7 days without adding that product within 1 day.
browse_p AS (
    SELECT message_id, profile_id, ts, json_extract_string(p, '$.product_id') AS product_id
    FROM e WHERE event = 'Product Viewed' AND ts > TIMESTAMPTZ '2026-10-25 00:00:00+00'
),
browse_c AS (
    SELECT p.message_id, count(c.message_id) AS n
    FROM browse_p p LEFT JOIN e c
        ON c.profile_id = p.profile_id AND c.event = 'Product Added'
        AND c.ts > p.ts AND c.ts <= p.ts + INTERVAL 1 DAY
        AND json_extract_string(c.p, '$.product_id') = p.product_id
    GROUP BY p.message_id
),
browsed AS (
    SELECT p.profile_id, count(*) FILTER (WHERE coalesce(c.n, 0) = 0) AS v
    FROM browse_p p LEFT JOIN browse_c c USING (message_id)
    GROUP BY p.profile_id
),
base AS (
    SELECT
        pr.profile_id,
        coalesce(a.orders_30d, 0) >= 1 AS ordered_30d,
        coalesce(a.orders_90d_e, 0) >= 3 AS ordered_3x_90d,
        coalesce(a.big_orders_90d, 0) >= 1 AS big_order_90d,
        coalesce(a.usd_orders, 0) >= 1 AS usd_buyer,
        coalesce(a.orders, 0) = 0 AS no_orders,
        coalesce(a.orders_30_90d, 0) >= 1 AND coalesce(a.orders_30d, 0) = 0 AS lapsed,
        coalesce(a.views_7d, 0) >= 5 AS viewers_7d,
        coalesce(a.electronics_views_30d, 0) >= 2 AS electronics_browsers,
        coalesce(a.searches_30d, 0) >= 1 AS searchers,
        NOT (coalesce(a.sign_ins_30d, 0) >= 1) AS not_signed_in_30d,
        coalesce(a.sign_ins_72h, 0) >= 1 AS signed_in_72h,
        coalesce(a.opens_14d, 0) >= 1 AS email_openers,
        coalesce(a.clicks_30d, 0) >= 1 AND coalesce(a.orders_30d, 0) = 0 AS clickers_no_order,
        coalesce(ab.v, 0) >= 1 AS cart_abandoners,
        coalesce(cv.v, 0) >= 1 AS checkout_converters,
        coalesce(br.v, 0) >= 2 AS browse_no_add,
        coalesce(pr.total_revenue > 500, false) AS high_value,
        coalesce(pr.orders_90d >= 3, false) AS frequent,
        coalesce(a.refunds_90d, 0) >= 1 AS refunders,
        coalesce(a.app_opens_30d, 0) >= 3 AS mobile_users,
        coalesce(a.cart_views_30d, 0) >= 2 AS cart_viewers,
        coalesce(a.avg_revenue_180d >= 80, false) AS avg_order_high,
        coalesce(a.max_revenue > 300, false) AS max_order_high,
        coalesce(a.revenue_90d >= 200, false) AS revenue_90d_high,
        coalesce(a.coupon_orders_180d, 0) >= 1 AS coupon_users,
        coalesce(a.subscriptions, 0) >= 1 AND NOT (coalesce(a.cancellations, 0) >= 1) AS subscribers,
        coalesce(a.bad_reviews_180d, 0) >= 1 OR coalesce(a.refunds_30d, 0) >= 2 AS unhappy
    FROM read_parquet('@PROFILES@') pr
    LEFT JOIN agg a USING (profile_id)
    LEFT JOIN abandon ab USING (profile_id)
    LEFT JOIN converted cv USING (profile_id)
    LEFT JOIN browsed br USING (profile_id)
)
SELECT
    *,
    high_value AND ordered_30d AS vip,
    high_value AND NOT ordered_30d AS at_risk,
    frequent AND NOT refunders AS loyal
FROM base
