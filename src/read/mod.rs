//! What `serve` and the CLI read from published runs: query sessions over a space's last good
//! run, the run history, explanations (identity and audience) and previews. Nothing here
//! publishes; `serve` reaches a space's data only through this module.

pub mod explain;
pub mod history;
pub mod identity_diff;
pub mod preview;
pub mod promote;
pub mod repairs;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;

use crate::error::EngineResult;
/// The profile column that holds an identifier type (`user_id`, `email`, ...).
pub use crate::plan::profiles::column_name;
pub use crate::run::session;
pub use crate::run::tables::published;
pub use crate::run::{RunOptions, output_location, register_events, register_published};

use crate::spec::Space;
use crate::store::{delta, manifest};

/// A session for reading a space: the `events` view and source views as of `as_of`, and every
/// published table at the version of the last good run.
pub async fn query_session(space: &Space, as_of: DateTime<Utc>) -> EngineResult<SessionContext> {
    let ctx = session::new_session(&session::SessionOptions::default())?;
    register_events(&ctx, space, as_of, None, None).await?;
    register_published(&ctx, space).await?;
    Ok(ctx)
}

/// Registers one view per source name over the session's `events` (the published history).
pub async fn register_source_views(ctx: &SessionContext, space: &Space) -> EngineResult<()> {
    let sink = &mut crate::run::sink::StageSink::Materialize;
    crate::run::register_source_views(ctx, sink, space).await
}

/// Opens a published table of a space at the manifest's version, for reading.
pub async fn published_table(
    space: &Space,
    table: &str,
) -> EngineResult<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
    let out = output_location(space)?;
    let Some(m) = manifest::read(&out).await? else {
        return Ok(None);
    };
    let Some(v) = m.tables.get(table) else {
        return Ok(None);
    };
    Ok(Some(delta::provider(&out.child(table), *v).await?))
}
