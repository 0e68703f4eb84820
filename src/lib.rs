//! Cohort: a warehouse-native profiles-and-audiences engine.
//!
//! Cohort reads the event tables already in a data lake (Parquet in a folder or an S3-compatible
//! bucket), evaluates the definitions of a *space* (identity rules, computed traits, SQL traits,
//! audiences) as DataFusion plans, and publishes the results as Delta Lake tables.
//!
//! # The pipeline
//!
//! ```text
//!  space folder ──spec──▶ typed definitions (file:line:col on every error)
//!        │
//!     analyze   sources can be opened, names bound, dependency order
//!        │
//!     compile   definitions ─▶ DataFusion LogicalPlans (builders, never string-built SQL)
//!        │
//!     engine    one run = one SessionContext + one as-of time; stages in order
//!        │      (events ─▶ identity ─▶ profiles ─▶ traits ─▶ audiences ─▶ changes)
//!        ▼
//!     store     object stores from URLs, Delta tables, atomic publish, leases, run history
//!        ▼
//!     serve     Profile API (from an index built per published run), Postgres-wire SQL,
//!               CSV export, webhook destinations; `schedule` says when runs happen
//! ```
//!
//! `generate` writes realistic sample data for every source preset; `cli` drives it all and
//! wires `serve` and `schedule` together for `cohort serve`.
//!
//! # Dependency direction
//!
//! Imports point one way, from the top of this list to the bottom, never back up:
//!
//! `cli` ─▶ `serve`, `schedule` ─▶ `engine` ─▶ `compile` ─▶ `analyze` ─▶ `spec`;
//! `engine` ─▶ `identity`, `store` (`identity` uses only DataFusion); `analyze` ─▶ `store` (to open source URLs);
//! `generate` ─▶ `store`. `error` is used by all and uses none of them.
//! `spec` knows nothing of DataFusion, `store` knows nothing of definitions, and nothing
//! depends on `cli`.

pub mod analyze;
pub mod cli;
pub mod error;
pub mod functions;
pub mod generate;
pub mod identity;
pub mod plan;
pub mod read;
pub mod run;
pub mod schedule;
pub mod script;
pub mod serve;
pub mod spec;
pub mod store;
