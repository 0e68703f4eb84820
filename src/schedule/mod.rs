//! When runs happen: cron schedules per definition (croner), catch-up after downtime, one run
//! of a space at a time, retries with backoff. The clock is injected so tests can drive it.
