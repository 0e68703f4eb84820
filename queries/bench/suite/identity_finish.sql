-- Stage 2 (identity), the limits. SIMPLIFIED against Cohort's sequential replay: Cohort replays
-- components that break a limit event by event in (timestamp, message_id) order and drops the
-- lowest-priority identifier of the offending event. Here only user_id's limit of 1 is kept,
-- and like this: every user_id of a component is its own profile; every other identifier
-- joins the profile of the user_id it first occurred with (earliest event holding both),
-- else the component's label. The email / anonymous_id limits of 5 are not enforced.
-- Every event then belongs to the profile of its highest-priority identifier.
CREATE TABLE node_profile AS
WITH firsts AS (
    SELECT o.node, arg_min(u.node, (o.ts, o.message_id)) AS profile
    FROM occ o JOIN occ u ON u.message_id = o.message_id AND u.id_type = 'user_id'
    WHERE o.id_type <> 'user_id'
    GROUP BY o.node
)
SELECT l.node,
    CASE WHEN l.node LIKE 'user_id:%' THEN l.node ELSE coalesce(f.profile, l.label) END AS profile_id
FROM labels l LEFT JOIN firsts f USING (node);

CREATE TABLE resolved AS
SELECT e.* EXCLUDE (ts), p.profile_id
FROM events e JOIN (
    SELECT o.message_id, arg_min(np.profile_id, (o.rank, o.node)) AS profile_id
    FROM occ o JOIN node_profile np USING (node)
    GROUP BY o.message_id
) p USING (message_id);
