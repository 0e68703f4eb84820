//! Definitions to DataFusion LogicalPlans, built with `LogicalPlanBuilder` and expression
//! builders, never with SQL text. SQL is only ever an output of this module.

pub mod aggregates;
pub mod audiences;
pub mod dialect;
pub mod events;
pub mod functions;
pub mod identity;
pub mod json_depth;
pub mod junction;
pub mod profiles;
pub mod script;
pub mod sql_identity;
pub mod traits;
pub mod unparse;
