-- The session settings a Spark SQL script (`cohort compile --script --dialect spark`) starts
-- with, for Spark 4 (SQL user-defined functions, SQL scripting, VARIANT); its helpers
-- (helpers_spark.sql) follow. Statements are separated by a line holding only `;`.
-- Times without an offset are UTC, as in Cohort.
SET spark.sql.session.timeZone = UTC
;
-- 64-bit integer arithmetic wraps around as in Cohort (and the identifier hash relies on it):
-- ANSI mode would stop the script with an overflow error instead.
SET spark.sql.ansi.enabled = false
