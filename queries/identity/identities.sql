-- The published `identities` table: one row per identifier that belongs to a profile.
SELECT p.profile_id, k.id_type, k.id_value, k.first_seen, k.last_seen
FROM id_keyed k
JOIN id_profile_ids p ON k.profile_key = p.profile_key
