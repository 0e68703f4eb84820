//! Definitions to DataFusion LogicalPlans, built with `LogicalPlanBuilder` and expression
//! builders, never with SQL text. SQL is only ever an output of this module. The functions the
//! plans call (Cohort's UDFs and UDAFs) live in `crate::functions`.
//!
//! - `events.rs`: every source table, whatever its preset, projected into one normalized event
//!   schema and classified (bad rows get a reason).
//! - `history.rs`: deduplication by message id, and the event history runs extend.
//! - `identity.rs`: every identifier occurrence of every event, normalized and checked against
//!   the blocked lists, for the identity stage.
//! - `traits/`: computed traits as ONE aggregation per entity (`mod.rs`), and the event-level
//!   conditions (chain filters, `where` comparisons) that audiences share (`conditions.rs`).
//! - `profiles.rs`: profiles and accounts assembled: custom traits, external ids, first and
//!   last seen, every trait column joined onto every profile.
//! - `audiences/`: audiences as boolean columns over one wide row per profile or account
//!   (conditions, event conditions, funnels, account rules, the membership build, static
//!   inputs for `cohort compile`).
//! - `kept.rs`: the trait values of the touched profiles with everyone else's as published.
//! - `junction.rs`: balanced AND / OR trees, so long chains stay shallow.

pub mod audiences;
pub mod events;
pub mod history;
pub mod identity;
pub mod junction;
pub mod kept;
pub mod profiles;
pub mod repairs;
pub mod traits;
