//! Definitions to DataFusion LogicalPlans, built with `LogicalPlanBuilder` and expression
//! builders, never with SQL text. SQL is only ever an output of this module.

pub mod events;
pub mod functions;
pub mod identity;
