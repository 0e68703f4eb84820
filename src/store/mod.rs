//! Storage: object stores from URLs, Delta tables, the atomic publish of a run, the lease that
//! keeps two runs of one space apart, the run history, retention of old table versions, and
//! the settings of a run's scratch Parquet.
//!
//! Nothing here knows about definitions; `store` takes tables and names and makes them durable.

pub mod delta;
pub mod lease;
pub mod manifest;
pub mod objects;
pub mod retention;
pub mod scratch;
