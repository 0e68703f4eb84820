-- The 20 computed traits of benches/traits.rs, written by hand for DuckDB: one GROUP BY
-- profile_id with a FILTER per trait, over the `events` preset's Parquet files. It gives the
-- same result as Cohort's fused plan (`computed_traits_plan`) with as-of 2026-11-01T00:00:00Z:
--
-- * a profile is COALESCE(user_id, anonymous_id); rows with neither are left out;
-- * `timestamp` is ISO text: TRY_CAST to TIMESTAMPTZ, so the bad rows' 'not-a-date' is null
--   and falls out of `ts <= as-of`;
-- * properties and context are JSON text, some rows broken on purpose: a broken object reads
--   as no fields (json_extract_string would fail on it), like cohort_json_get;
-- * within(N days) is `as-of - N days < ts <= as-of`; between(A, B) is
--   `as-of - B < ts <= as-of - A`;
-- * numbers are TRY_CAST(text AS DOUBLE): a value that is not a number is ignored;
-- * mode(v, m): the most frequent value, ties to the smallest, null when it occurs fewer than
--   m times (histogram, keep counts >= m, then the min of (-count, value));
-- * first / last: the value of the earliest / latest event, ordered by (ts, message_id),
--   among events where the value is present;
-- * unique: the sorted distinct values; unique(..).count(): count(DISTINCT ..).
--
-- @DATA@ is replaced by the data folder. As-of and the window starts are literals:
--   as-of 2026-11-01, 30 days 2026-10-02, 90 days 2026-08-03, 180 days 2026-05-05,
--   365 days 2025-11-01.
SELECT
    profile_id,
    -- event('Order Completed').count()
    count(*) FILTER (WHERE event = 'Order Completed') AS orders,
    -- event('Order Completed').within(30 days).count()
    count(*) FILTER (
        WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00'
    ) AS orders_30d,
    -- event('Order Completed').where(property('revenue') >= 100).within(90 days).count()
    count(*) FILTER (
        WHERE event = 'Order Completed'
            AND TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE) >= 100
            AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00'
    ) AS big_orders_90d,
    -- event('Order Completed').between(90 days, 180 days).count()
    count(*) FILTER (
        WHERE event = 'Order Completed'
            AND ts > TIMESTAMPTZ '2026-05-05 00:00:00+00'
            AND ts <= TIMESTAMPTZ '2026-08-03 00:00:00+00'
    ) AS orders_prev_quarter,
    -- event('Product Viewed').where(context('device.type') one_of ['ios', 'android'])
    --     .within(30 days).count()
    count(*) FILTER (
        WHERE event = 'Product Viewed'
            AND json_extract_string(c, '$.device.type') IN ('ios', 'android')
            AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00'
    ) AS app_views_30d,
    -- event('Product Added').where(property('category') = 'Electronics' AND
    --     property('price') > 50).count()
    count(*) FILTER (
        WHERE event = 'Product Added'
            AND json_extract_string(p, '$.category') = 'Electronics'
            AND TRY_CAST(json_extract_string(p, '$.price') AS DOUBLE) > 50
    ) AS pricey_electronics_adds,
    -- event('Order Completed').sum(property('revenue'))
    sum(TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE))
        FILTER (WHERE event = 'Order Completed') AS total_revenue,
    -- event('Order Completed').within(365 days).sum(property('total'))
    sum(TRY_CAST(json_extract_string(p, '$.total') AS DOUBLE)) FILTER (
        WHERE event = 'Order Completed' AND ts > TIMESTAMPTZ '2025-11-01 00:00:00+00'
    ) AS total_spent_365d,
    -- event('Order Completed').avg(property('revenue'))
    avg(TRY_CAST(json_extract_string(p, '$.revenue') AS DOUBLE))
        FILTER (WHERE event = 'Order Completed') AS avg_order_value,
    -- event('Coupon Applied').avg(property('discount'))
    avg(TRY_CAST(json_extract_string(p, '$.discount') AS DOUBLE))
        FILTER (WHERE event = 'Coupon Applied') AS avg_discount,
    -- event('Product Viewed').within(90 days).min(property('price'))
    min(TRY_CAST(json_extract_string(p, '$.price') AS DOUBLE)) FILTER (
        WHERE event = 'Product Viewed' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00'
    ) AS min_price_viewed_90d,
    -- event('Product Added').max(property('price'))
    max(TRY_CAST(json_extract_string(p, '$.price') AS DOUBLE))
        FILTER (WHERE event = 'Product Added') AS max_price_added,
    -- event('Product Viewed').within(90 days).mode(property('category'), 2)
    list_min(list_transform(
        list_filter(
            map_entries(histogram(json_extract_string(p, '$.category')) FILTER (
                WHERE event = 'Product Viewed' AND ts > TIMESTAMPTZ '2026-08-03 00:00:00+00'
            )),
            lambda e: e.value >= 2
        ),
        lambda e: {'n': -(e.value::BIGINT), 'v': e.key}
    )).v AS favorite_category_90d,
    -- event('Product Added').mode(property('brand'))
    list_min(list_transform(
        map_entries(histogram(json_extract_string(p, '$.brand'))
            FILTER (WHERE event = 'Product Added')),
        lambda e: {'n': -(e.value::BIGINT), 'v': e.key}
    )).v AS favorite_brand,
    -- event('Signed Up').first(property('method'))
    arg_min(json_extract_string(p, '$.method'), (ts, message_id)) FILTER (
        WHERE event = 'Signed Up' AND json_extract_string(p, '$.method') IS NOT NULL
    ) AS signup_method,
    -- event('Products Searched').last(property('query'))
    arg_max(json_extract_string(p, '$.query'), (ts, message_id)) FILTER (
        WHERE event = 'Products Searched' AND json_extract_string(p, '$.query') IS NOT NULL
    ) AS last_search,
    -- event('Order Completed').last(property('currency'))
    arg_max(json_extract_string(p, '$.currency'), (ts, message_id)) FILTER (
        WHERE event = 'Order Completed' AND json_extract_string(p, '$.currency') IS NOT NULL
    ) AS last_order_currency,
    -- event('Signed In').last(context('os.name'))
    arg_max(json_extract_string(c, '$.os.name'), (ts, message_id)) FILTER (
        WHERE event = 'Signed In' AND json_extract_string(c, '$.os.name') IS NOT NULL
    ) AS last_os,
    -- event('Product Added').unique(property('category'))
    list_sort(list_distinct(list(json_extract_string(p, '$.category')) FILTER (
        WHERE event = 'Product Added' AND json_extract_string(p, '$.category') IS NOT NULL
    ))) AS categories_added,
    -- event('Product Viewed').within(30 days).unique(property('product_id')).count()
    count(DISTINCT json_extract_string(p, '$.product_id')) FILTER (
        WHERE event = 'Product Viewed' AND ts > TIMESTAMPTZ '2026-10-02 00:00:00+00'
    ) AS products_viewed_30d
FROM (
    SELECT
        COALESCE(user_id, anonymous_id) AS profile_id,
        event,
        message_id,
        TRY_CAST("timestamp" AS TIMESTAMPTZ) AS ts,
        CASE WHEN json_valid(properties) THEN properties END AS p,
        CASE WHEN json_valid(context) THEN context END AS c
    FROM read_parquet('@DATA@/*/*.parquet', hive_partitioning = true)
    WHERE event IN (
        'Order Completed', 'Product Viewed', 'Product Added', 'Coupon Applied',
        'Signed Up', 'Products Searched', 'Signed In'
    )
)
WHERE profile_id IS NOT NULL
    AND ts <= TIMESTAMPTZ '2026-11-01 00:00:00+00'
GROUP BY profile_id
