-- The session settings a Databricks SQL script (`cohort compile --script --dialect databricks`)
-- starts with, for a SQL warehouse or Databricks Runtime 16.3 and later (SQL user-defined
-- functions, SQL scripting, VARIANT); the Spark script's helpers (helpers_spark.sql) follow.
-- Statements are separated by a line holding only `;`.
-- Times without an offset are UTC, as in Cohort.
SET TIMEZONE = UTC
;
-- 64-bit integer arithmetic wraps around as in Cohort (and the identifier hash relies on it):
-- ANSI mode would stop the script with an overflow error instead.
SET ANSI_MODE = false
