//! What `cohort serve` runs over one or more spaces, each fully isolated (its own output root
//! and token): the Profile API, the Postgres-wire SQL endpoint, CSV export, webhook
//! destinations, the web app (the Profile Explorer and audience pages, over the API), and the
//! collector that writes incoming events to the spaces' sources.
//! Everything else here reads published tables; nothing reaches into `spec` beyond the typed
//! [`Space`].

pub mod api;
mod api_errors;
mod app;
pub mod collect;
pub mod destinations;
pub mod export;
pub mod index;
pub mod sql;
pub mod sql_auth;
mod sql_catalog;
mod sql_checked;
mod sql_compat;
mod sql_copy;
mod sql_cursor;
mod sql_intake;
pub mod sql_limits;
mod sql_params;
mod sql_pool;
mod sql_rewrite;
mod sql_session;
pub mod sql_tls;
mod sql_types;
mod sql_yield;

use crate::spec::Space;

/// A space as the server sees it: its definitions and the token that opens it.
#[derive(Clone, Debug)]
pub struct ServedSpace {
    pub space: Space,
    /// The space's access token: the Profile API's Basic-auth user name and the SQL
    /// endpoint's password.
    pub token: String,
}

impl ServedSpace {
    pub fn name(&self) -> &str {
        &self.space.name
    }
}

/// The environment variable holding a space's token: `COHORT_TOKEN_<NAME>`, upper-cased with
/// `-` as `_` (`COHORT_TOKEN_PROD`, `COHORT_TOKEN_MY_SPACE`).
pub fn token_env_var(space: &str) -> String {
    format!(
        "COHORT_TOKEN_{}",
        space.to_ascii_uppercase().replace('-', "_")
    )
}

/// Constant-time comparison of a presented token with the space's.
pub fn token_matches(presented: &[u8], token: &str) -> bool {
    let t = token.as_bytes();
    if presented.len() != t.len() {
        return false;
    }
    presented
        .iter()
        .zip(t)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}
