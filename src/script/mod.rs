//! SQL text as an output: DataFusion plans unparsed for another engine (PostgreSQL, DuckDB),
//! the dialect differences (one [`dialect::ScriptDialect`] per engine, handed out by the
//! `--dialect` selector [`unparse::SqlDialect`]), and `cohort compile --script`'s whole-run
//! script, identity steps included (written from the run's own `queries/identity/*.sql`).
//! Nothing here runs a query.

pub mod dialect;
pub mod sql_identity;
pub mod steps;
pub mod unparse;
