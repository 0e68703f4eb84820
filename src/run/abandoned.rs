//! Runs that ended without recording how: killed (`kill -9`, out of memory, a lost machine), or
//! failed in a way that could not even write their `runs` row (a full disk, a lost store).
//!
//! While it works, a run keeps a marker `_cohort/started/<run_id>.json` in the space's output
//! and removes it once its row is in `runs`. The next run of the space holds the lease, so no
//! other run of the space is live: each marker it finds belongs to a run that died. It adds a
//! `runs` row for each (status `abandoned`, or `failed` with the error when the dead run managed
//! to note it in its marker) together with its own row, and removes those markers.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::record::{RunRecord, RunStatus};
use crate::error::{EngineResult, StoreError};
use crate::store::lease::host_name;
use crate::store::objects::Location;

/// What a run's marker holds: enough to write its `runs` row if it never does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Started {
    pub run_id: String,
    pub space: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub as_of: DateTime<Utc>,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub window_days: Option<i64>,
    #[serde(default)]
    pub definitions_hash: String,
    /// Why the run failed, when it could write this but not its `runs` row.
    #[serde(default)]
    pub error: Option<String>,
}

fn folder(out: &Location) -> object_store::path::Path {
    out.prefix.clone().join("_cohort").join("started")
}

fn path(out: &Location, run_id: &str) -> object_store::path::Path {
    folder(out).join(format!("{run_id}.json"))
}

async fn put(out: &Location, s: &Started) -> EngineResult<()> {
    let body = serde_json::to_vec_pretty(s).map_err(|e| StoreError::Corrupt {
        what: "run marker".into(),
        reason: e.to_string(),
    })?;
    out.store
        .put(&path(out, &s.run_id), PutPayload::from(body))
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

/// Leaves the marker of the run `rec` is the record of.
pub async fn mark(out: &Location, rec: &RunRecord) -> EngineResult<()> {
    put(
        out,
        &Started {
            run_id: rec.run_id.clone(),
            space: rec.space.clone(),
            host: host_name(),
            pid: std::process::id(),
            started_at: rec.started_at,
            as_of: rec.as_of,
            trigger: rec.trigger.clone(),
            window_days: rec.window_days,
            definitions_hash: rec.definitions_hash.clone(),
            error: None,
        },
    )
    .await
}

/// Notes in a failed run's marker why it failed, when its `runs` row could not be written
/// (the next run records it). Best effort: the store may refuse this too.
pub async fn note_failure(out: &Location, rec: &RunRecord) {
    let noted = async {
        let bytes = out
            .store
            .get(&path(out, &rec.run_id))
            .await
            .map_err(StoreError::from)?
            .bytes()
            .await
            .map_err(StoreError::from)?;
        let mut s: Started = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            what: "run marker".into(),
            reason: e.to_string(),
        })?;
        s.error = rec.message.clone();
        put(out, &s).await
    };
    if let Err(e) = noted.await {
        tracing::warn!(
            "could not note the failure of run {} for the next run either: {e}",
            rec.run_id
        );
    }
}

/// Removes the markers of `run_ids` (their rows are in `runs` now). Best effort: a marker left
/// behind only makes the next run check `runs` for its row.
pub async fn clear(out: &Location, run_ids: &[String]) {
    for id in run_ids {
        match out.store.delete(&path(out, id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("could not remove the marker of run {id}: {e}"),
        }
    }
}

/// The runs that left a marker and are not `current`: their `runs` rows, oldest first.
/// Call it while holding the space's lease (then none of them is alive).
pub async fn left_behind(
    out: &Location,
    current: &str,
    noticed_by: &str,
) -> EngineResult<Vec<RunRecord>> {
    let listed: Vec<object_store::ObjectMeta> = out
        .store
        .list(Some(&folder(out)))
        .try_collect()
        .await
        .map_err(StoreError::from)?;
    let mut out_recs = Vec::new();
    for meta in listed {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        let Some(run_id) = name.strip_suffix(".json") else {
            continue;
        };
        if run_id == current {
            continue;
        }
        let bytes = out
            .store
            .get(&meta.location)
            .await
            .map_err(StoreError::from)?
            .bytes()
            .await
            .map_err(StoreError::from)?;
        match serde_json::from_slice::<Started>(&bytes) {
            Ok(s) => out_recs.push(record(&s, noticed_by)),
            Err(e) => tracing::warn!("ignoring the unreadable run marker {}: {e}", meta.location),
        }
    }
    out_recs.sort_by_key(|r| r.started_at);
    Ok(out_recs)
}

/// The `runs` row of a run that left `s` behind.
fn record(s: &Started, noticed_by: &str) -> RunRecord {
    let (status, message) = match &s.error {
        Some(e) => (
            RunStatus::Failed,
            format!("{e} (recorded by run {noticed_by}: the run could not write its own record)"),
        ),
        None => (
            RunStatus::Abandoned,
            format!(
                "the run stopped without recording how it ended: killed (e.g. `kill -9` or \
                 out of memory) or its machine stopped (pid {} on {}); noticed by run \
                 {noticed_by}. Its tables were never published.",
                s.pid, s.host
            ),
        ),
    };
    RunRecord {
        run_id: s.run_id.clone(),
        space: s.space.clone(),
        status,
        as_of: s.as_of,
        started_at: s.started_at,
        finished_at: s.started_at,
        window_days: s.window_days,
        definitions_hash: s.definitions_hash.clone(),
        message: Some(message),
        trigger: s.trigger.clone(),
        ..RunRecord::default()
    }
}
