//! The manifest: which version of each published table belongs to the last good run.
//!
//! Delta commits one table at a time, so a run that publishes several tables writes all of
//! them first and then replaces `_cohort/manifest.json` in one atomic PUT. That PUT is the
//! moment the run becomes visible: Cohort's readers (and the documented way for outside
//! readers) open every table at the version the manifest names, so they see the previous run
//! or the new one, never a mix. A run killed before that PUT leaves the old manifest in place.
//!
//! Each manifest is also kept as `_cohort/manifests/<written at>.json`, so that retention
//! (see [`super::retention`]) knows which table versions readers were shown within its window.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::objects::Location;
use crate::error::{StoreError, StoreResult};

/// Format version of the manifest file.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub space: String,
    pub run_id: String,
    pub as_of: String,
    pub published_at: String,
    /// Table name -> Delta version that holds this run's rows.
    pub tables: BTreeMap<String, u64>,
    /// Fingerprint of the identity rules the published graph was built with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_rules: Option<String>,
    /// Start of the window the run read (RFC 3339), when it read only part of history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_from: Option<String>,
    /// Fingerprint of the source definitions the published event history was read under
    /// (absent when the run kept no history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<String>,
    /// Fingerprint of each definition file (path in the space -> hash): a run whose files
    /// all match may keep the untouched profiles' values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definitions: Option<BTreeMap<String, String>>,
    /// The kinds of values each custom trait key of identify calls had (the type of its
    /// column follows from them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_trait_kinds: Option<BTreeMap<String, std::collections::BTreeSet<String>>>,
    /// Definitions this run kept without evaluating them (a run asked for some definitions
    /// only): the next run that evaluates them evaluates them for every profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
    /// Each SQL trait's columns and how many profiles it started (what a run that keeps a SQL
    /// trait's values needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_traits: Option<BTreeMap<String, SqlTraitState>>,
    /// When each computed trait and audience first appeared in the run history (`trait:<key>`
    /// / `audience:<key>` -> RFC 3339): what `backfill: false` counts events from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<BTreeMap<String, String>>,
}

/// Definitions a run kept without evaluating them, by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// Computed traits of users.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub traits: BTreeSet<String>,
    /// SQL traits.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sql_traits: BTreeSet<String>,
    /// Audiences of users.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub audiences: BTreeSet<String>,
}

impl Kept {
    pub fn is_empty(&self) -> bool {
        self.traits.is_empty() && self.sql_traits.is_empty() && self.audiences.is_empty()
    }
}

/// A SQL trait as a run published it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SqlTraitState {
    /// Its columns in `profiles`.
    pub columns: Vec<String>,
    /// The identifier type of its identifier column.
    #[serde(default)]
    pub id_type: String,
    /// Profiles it started (that no event had made).
    pub started: u64,
    /// The version of its rows as the query returned them, before the merge into profiles
    /// (the Delta table [`sql_trait_rows`]), when the run that evaluated it published them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// Where a SQL trait's rows are kept between runs: `<space output>/sql_trait_rows/<key>`
/// (run state, like `identity_occurrences`; not a table for readers).
pub fn sql_trait_rows(space: &Location, key: &str) -> Location {
    space.child(SQL_TRAIT_ROWS).child(key)
}

/// The folder of [`sql_trait_rows`].
pub const SQL_TRAIT_ROWS: &str = "sql_trait_rows";

impl Manifest {
    /// Every Delta table the manifest names, with its location's name under the space's
    /// output (`sql_trait_rows/<key>` for the rows of SQL traits) and its version.
    pub fn all_tables(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> =
            self.tables.iter().map(|(t, v)| (t.clone(), *v)).collect();
        for (key, state) in self.sql_traits.iter().flatten() {
            if let Some(v) = state.rows {
                out.push((format!("{SQL_TRAIT_ROWS}/{key}"), v));
            }
        }
        out
    }
}

fn path(space: &Location) -> object_store::path::Path {
    space.prefix.clone().join("_cohort").join("manifest.json")
}

fn history_folder(space: &Location) -> object_store::path::Path {
    space.prefix.clone().join("_cohort").join("manifests")
}

const HISTORY_TIME: &str = "%Y%m%dT%H%M%S%.6fZ";

/// Reads the manifest of a space's output, if a run was ever published there.
pub async fn read(space: &Location) -> StoreResult<Option<Manifest>> {
    match space.store.get(&path(space)).await {
        Ok(r) => {
            let bytes = r.bytes().await?;
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: format!("{}/_cohort/manifest.json", space.url),
                reason: e.to_string(),
            })?;
            Ok(Some(m))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Publishes a manifest: one atomic PUT (local stores write a temp file and rename it), after
/// keeping a copy in the manifest history.
pub async fn write(space: &Location, m: &Manifest) -> StoreResult<()> {
    let body = serde_json::to_vec_pretty(m).map_err(|e| StoreError::Corrupt {
        what: "manifest".into(),
        reason: e.to_string(),
    })?;
    let kept = history_folder(space).join(format!("{}.json", Utc::now().format(HISTORY_TIME)));
    space
        .store
        .put(&kept, PutPayload::from(body.clone()))
        .await?;
    space
        .store
        .put(&path(space), PutPayload::from(body))
        .await?;
    Ok(())
}

/// One manifest of the history: when it was written, what it named, and where it is kept.
#[derive(Clone, Debug)]
pub struct PastManifest {
    pub written_at: DateTime<Utc>,
    pub manifest: Manifest,
    pub path: object_store::path::Path,
}

/// Every manifest kept in the history, oldest first. An unreadable entry is an error: skipping
/// it could let retention remove files it names.
pub async fn history(space: &Location) -> StoreResult<Vec<PastManifest>> {
    let listed: Vec<object_store::ObjectMeta> = space
        .store
        .list(Some(&history_folder(space)))
        .try_collect()
        .await?;
    let mut out = Vec::new();
    for meta in listed {
        let Some(name) = meta
            .location
            .filename()
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let Ok(t) = NaiveDateTime::parse_from_str(name, HISTORY_TIME) else {
            continue;
        };
        let bytes = space.store.get(&meta.location).await?.bytes().await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: format!("{}/{}", space.url, meta.location),
                reason: e.to_string(),
            })?;
        out.push(PastManifest {
            written_at: t.and_utc(),
            manifest,
            path: meta.location,
        });
    }
    out.sort_by_key(|p| p.written_at);
    Ok(out)
}
