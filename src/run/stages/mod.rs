//! The stages of a run, one module each, in the order they run (see [`super`]): each takes the
//! run's [`super::RunCtx`] and returns what the later stages need.

mod accounts;
pub mod audiences;
pub mod events;
pub mod identity;
pub mod identity_affected;
pub(crate) mod memberships;
mod profile_events;
pub mod profiles;
mod sql_trait_merge;
pub mod sql_traits;
mod started;
