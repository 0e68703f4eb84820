//! Cohort's one integration-test binary: each module is one area of behaviour, run end to end.

mod audiences;
mod cli;
mod common;
mod compile;
mod crash;
mod docs;
mod export;
mod identity;
mod identity_runs;
mod interop;
mod presets;
mod s3;
mod slt;
mod sql_traits;
mod validate;
