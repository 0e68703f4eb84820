-- Which profiles belong to which accounts: every group call links the profile of its event to
-- the call's group_id.
SELECT DISTINCT group_id AS account_id, profile_id
FROM profile_events
WHERE type = 'group' AND group_id IS NOT NULL
