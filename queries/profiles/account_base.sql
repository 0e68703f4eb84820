-- One row per account: when its group calls were first and last seen, and how many profiles
-- it links.
SELECT g.account_id, g.first_seen, g.last_seen, COALESCE(u.users, 0) AS users
FROM (
    SELECT account_id, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen
    FROM account_calls
    WHERE account_id IS NOT NULL
    GROUP BY account_id
) AS g
LEFT JOIN (
    SELECT account_id, COUNT(*) AS users FROM account_links GROUP BY account_id
) AS u ON g.account_id = u.account_id
