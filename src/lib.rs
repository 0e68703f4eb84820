//! Cohort: a warehouse-native profiles-and-audiences engine.
//!
//! Cohort reads the event tables already in a data lake (Parquet in a folder or an S3-compatible
//! bucket), evaluates the definitions of a *space* (identity rules, computed traits, SQL traits,
//! audiences) as DataFusion plans, and publishes the results as Delta Lake tables.
//!
//! # The map
//!
//! ```text
//!  space folder ──spec──▶ definitions with spans (file:line:col on every error)
//!        │
//!     analyze    sources opened, names bound, dependency order
//!        │
//!     plan       definitions ─▶ DataFusion LogicalPlans (builders, never SQL text);
//!        │       functions: Cohort's UDFs and UDAFs, registered in one place
//!        │
//!     run        one run = RunCtx (session, space, as-of, output, sink) and the stages in
//!        │       order: events ─▶ identity ─▶ sql_traits ─▶ profiles ─▶ audiences, then publish
//!        ▼
//!     store      object stores from URLs, Delta tables, manifest, leases, the runs table
//!        ▼
//!     read       query sessions over the last good run, explain, preview
//!        ▼
//!     live       traits and audiences kept up to date as the collector receives events
//!        ▼
//!     serve      Profile API, the web app over it, Postgres-wire SQL, CSV export,
//!                destinations; `schedule` says when runs happen
//! ```
//!
//! `script` turns the plans a run records into SQL for another engine (`cohort compile
//! --script`); `identity` is the connected-components replay; `generate` writes sample data;
//! `cli` drives it all. docs/architecture.md says how to add a stage, a UDF or a dialect.
//!
//! # Dependency direction
//!
//! A module names (with `crate::`) only the modules on its line; `tests/it/layers.rs` reads
//! this table and fails when the code says otherwise:
//!
//! ```text
//!  cli       ─▶ (anything)
//!  serve     ─▶ live, read, store, spec, error
//!  live      ─▶ read, run, plan, functions, identity, analyze, store, spec, error
//!  schedule  ─▶ spec, error
//!  read      ─▶ run, plan, functions, identity, analyze, store, spec, error
//!  run       ─▶ script, plan, functions, identity, analyze, store, spec, error
//!  script    ─▶ plan, functions, identity, spec, error
//!  plan      ─▶ functions, analyze, spec, error
//!  analyze   ─▶ spec, store, error
//!  generate  ─▶ store, spec, error
//!  store     ─▶ error
//!  functions ─▶ error
//!  identity  ─▶ store, error
//!  error     ─▶ spec
//!  spec      ─▶ (nothing)
//! ```
//!
//! `serve` never names `run`: it reads published runs through `read`. `spec` knows nothing of
//! DataFusion, `store` nothing of definitions, and nothing depends on `cli`.

pub mod analyze;
pub mod cli;
pub mod error;
pub mod functions;
pub mod generate;
pub mod identity;
pub mod live;
pub mod plan;
pub mod read;
pub mod run;
pub mod schedule;
pub mod script;
pub mod serve;
pub mod spec;
pub mod store;
