-- The session settings a Snowflake script (`cohort compile --script --dialect snowflake`)
-- starts with; its helper functions follow. Statements are separated by a line holding only
-- `;`.
-- Times without an offset are UTC, as in Cohort.
ALTER SESSION SET TIMEZONE = 'UTC'
;
-- The script names its tables and columns sometimes in quotes ("timestamp") and sometimes not
-- (id_types); with this setting both name the same object, stored in capitals.
ALTER SESSION SET QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE
