//! `cohort explain identity` and `cohort explain audience`: why identifiers share a profile,
//! and why a profile is (or is not) in an audience.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::super::render;
use super::{invalid, load_space};
use crate::read;
use crate::run::RunOptions;
use crate::spec;

/// `type:value`, split; anything else is a usage error.
fn identifier(identifier: &str) -> Result<(&str, &str)> {
    identifier.split_once(':').ok_or_else(|| {
        invalid(format!(
            "`{identifier}` is not `type:value` (e.g. `email:ada@example.com`)"
        ))
    })
}

pub(in crate::cli) async fn explain_identity(dir: &Path, identifier_arg: &str) -> Result<()> {
    let (t, v) = identifier(identifier_arg)?;
    let space = load_space(dir).await?;
    let ex = read::explain::explain_identity(&space, t, v).await?;
    print!("{}", render::render_identity_explanation(&ex));
    Ok(())
}

pub(in crate::cli) async fn explain_audience(
    dir: &Path,
    key: &str,
    identifier_arg: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<()> {
    let (t, v) = identifier(identifier_arg)?;
    let space = load_space(dir).await?;
    let opts = RunOptions {
        as_of: Some(evaluation_time(&space, as_of).await?),
        ..Default::default()
    };
    let ex = read::preview::explain_audience(&space, key, t, v, &opts).await?;
    render::print_audience_explanation(&ex);
    Ok(())
}

/// The as-of time to evaluate at: `--as-of`, else the last published run's, else now.
async fn evaluation_time(
    space: &spec::Space,
    as_of: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>> {
    if let Some(t) = as_of {
        return Ok(t);
    }
    let out = read::output_location(space)?;
    Ok(crate::store::manifest::read(&out)
        .await?
        .and_then(|m| DateTime::parse_from_rfc3339(&m.as_of).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc)))
}
