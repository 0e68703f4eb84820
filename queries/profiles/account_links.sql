-- Which profiles belong to which accounts: every group call links the profile of its event to
-- the call's group_id. `{events}` is every event with its profile, `profile_events`, or the
-- group calls with their profiles when `profile_events` holds only the touched profiles'
-- events.
SELECT DISTINCT group_id AS account_id, profile_id
FROM {events}
WHERE type = 'group' AND group_id IS NOT NULL
