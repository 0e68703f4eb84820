//! Definitions to DataFusion LogicalPlans, built with `LogicalPlanBuilder` and expression
//! builders, never with SQL text. SQL is only ever an output of this module.

pub mod audiences;
pub mod events;
pub mod identity;
pub mod junction;
pub mod profiles;
pub mod traits;
