//! A space's retention setting applied: `cohort vacuum`, and the vacuum a run does after it
//! publishes (see [`crate::store::retention`] for which files go).
//!
//! space.yaml's `retention:` (default [`DEFAULT_RETENTION`], a week; `off` turns the automatic
//! vacuum off) says how long the table versions of published runs are kept. A run applies it
//! after publishing at most once per day (or once per window, when the window is shorter), so
//! frequent runs do not pay for it each time; `cohort vacuum` applies it at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::output_location;
use crate::error::EngineResult;
use crate::spec::{Space, parse_duration};
use crate::store::lease;
use crate::store::objects::Location;
use crate::store::retention::{self, VacuumReport};

pub use retention::DEFAULT_RETENTION;

/// The longest a run waits between two automatic vacuums.
const AUTO_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The space's retention window; None when space.yaml says `retention: off`.
pub fn retention_of(space: &Space) -> Option<Duration> {
    match space.retention.as_deref() {
        Some(r) if r.eq_ignore_ascii_case("off") => None,
        Some(r) => Some(parse_duration(r).unwrap_or(DEFAULT_RETENTION)),
        None => Some(DEFAULT_RETENTION),
    }
}

/// `cohort vacuum`: removes the files of table versions no manifest within `retain` (default:
/// the space's retention, else a week) names. Takes the space's lease, waiting up to
/// `lease_wait` for a running run.
pub async fn vacuum_space(
    space: &Space,
    retain: Option<Duration>,
    dry_run: bool,
    lease_wait: Duration,
) -> EngineResult<VacuumReport> {
    let retain = retain
        .or_else(|| retention_of(space))
        .unwrap_or(DEFAULT_RETENTION);
    let out = output_location(space)?;
    let id = format!("vacuum-{}", Utc::now().format("%Y%m%dT%H%M%S"));
    let held = lease::acquire(&out, &id, lease_wait).await?;
    let result = retention::vacuum(&out, retain, dry_run).await;
    if result.is_ok() && !dry_run {
        note_vacuumed(&out).await;
    }
    held.release().await?;
    Ok(result?)
}

#[derive(Serialize, Deserialize)]
struct Vacuumed {
    at: DateTime<Utc>,
}

fn stamp(out: &Location) -> object_store::path::Path {
    out.prefix.clone().join("_cohort").join("vacuumed.json")
}

async fn note_vacuumed(out: &Location) {
    let body = serde_json::to_vec(&Vacuumed { at: Utc::now() }).unwrap_or_default();
    if let Err(e) = out.store.put(&stamp(out), PutPayload::from(body)).await {
        tracing::warn!("could not note the vacuum time: {e}");
    }
}

async fn last_vacuumed(out: &Location) -> Option<DateTime<Utc>> {
    let bytes = out.store.get(&stamp(out)).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice::<Vacuumed>(&bytes)
        .ok()
        .map(|v| v.at)
}

/// After a run published (holding the lease): applies the space's retention when it is due.
/// A vacuum that fails is reported and does not fail the run (its tables are published).
pub async fn after_publish(space: &Space, out: &Location) -> Option<VacuumReport> {
    let retain = retention_of(space)?;
    let every = chrono::Duration::from_std(retain.min(AUTO_EVERY)).ok()?;
    if let Some(at) = last_vacuumed(out).await
        && Utc::now() < at + every
    {
        return None;
    }
    match retention::vacuum(out, retain, false).await {
        Ok(r) => {
            note_vacuumed(out).await;
            Some(r)
        }
        Err(e) => {
            tracing::warn!(
                "retention: could not remove old table versions of `{}`: {e}",
                space.name
            );
            None
        }
    }
}
