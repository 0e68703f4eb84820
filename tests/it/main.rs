//! Cohort's one integration-test binary: each module is one area of behaviour, run end to end.

mod audiences;
mod cli;
mod common;
mod compile;
mod crash;
mod destinations;
mod docs;
mod export;
mod identity;
mod identity_runs;
mod identity_sql;
mod interop;
mod leftovers;
mod pg;
mod presets;
mod profile_api;
mod s3;
mod serve;
mod slt;
mod space_sql;
mod sql_endpoint;
mod sql_traits;
mod validate;
