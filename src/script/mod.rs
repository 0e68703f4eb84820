//! SQL text as an output: DataFusion plans unparsed for another engine (PostgreSQL, DuckDB),
//! the dialect differences, and `cohort compile --script`'s whole-run script, identity steps
//! included. Nothing here runs a query.

pub mod dialect;
// `script::script` names the whole-run script; the run records its `Step`s by that path.
#[allow(clippy::module_inception)]
pub mod script;
pub mod sql_identity;
pub mod unparse;
