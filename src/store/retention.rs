//! Retention: every run overwrites each published table with a new Delta version, and Delta
//! keeps the files of old versions until something removes them. This removes the files of
//! versions that neither the current manifest nor any manifest written within the retention
//! window names (nor any version whose files were still in use within the window).
//!
//! Delta's own vacuum (deltalake 1.1, full mode) decides which files may go: files removed from
//! the table longer ago than the window and files never committed (a killed run's) older than
//! the window, except the files of the latest version and of the versions we ask it to keep:
//! every version a kept manifest names. That matters because the latest Delta version is not
//! always the published one (a run killed mid-publish commits versions no manifest names).
//! Files are then deleted here, one by one, so a vacuum adds no commits to the tables.
//! Manifests older than the window leave the history once their versions' files are gone.
//! A SQL trait's kept rows (`sql_trait_rows/<key>`) that no manifest within the window names
//! (the trait was removed) go whole.
//!
//! Call it while holding the space's lease: a run's new files are named by no manifest yet.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use deltalake::operations::vacuum::VacuumMode;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::objects::Location;
use super::{delta, manifest};
use crate::error::{StoreError, StoreResult};

/// The retention a space has when its space.yaml says nothing: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a vacuum removed (or, on a dry run, would remove) from one table.
#[derive(Clone, Debug, Default)]
pub struct TableVacuum {
    pub table: String,
    /// Table versions whose files were kept (the current manifest's and those of manifests
    /// within the window).
    pub kept_versions: Vec<u64>,
    /// Paths relative to the table folder.
    pub files: Vec<String>,
    pub bytes: u64,
}

/// What a vacuum of a space's output did.
#[derive(Clone, Debug, Default)]
pub struct VacuumReport {
    pub dry_run: bool,
    pub retain: Duration,
    pub tables: Vec<TableVacuum>,
    /// Manifests older than the window removed from the history.
    pub manifests_removed: usize,
}

impl VacuumReport {
    pub fn files(&self) -> usize {
        self.tables.iter().map(|t| t.files.len()).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

/// Removes the files of table versions that no manifest within `retain` names from the space
/// output `out`; with `dry_run`, only reports what it would remove. Nothing to do when no run
/// was ever published there.
pub async fn vacuum(out: &Location, retain: Duration, dry_run: bool) -> StoreResult<VacuumReport> {
    let mut report = VacuumReport {
        dry_run,
        retain,
        ..Default::default()
    };
    let Some(current) = manifest::read(out).await? else {
        return Ok(report);
    };
    let window = chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(window)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let history = manifest::history(out).await?;
    let (recent, old): (Vec<_>, Vec<_>) = history.into_iter().partition(|h| h.written_at >= cutoff);

    let mut keep: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for m in std::iter::once(&current).chain(recent.iter().map(|h| &h.manifest)) {
        for (table, v) in m.all_tables() {
            keep.entry(table).or_default().insert(v);
        }
    }
    report
        .tables
        .extend(unnamed_rows(out, &keep, dry_run).await?);
    for (table, versions) in keep {
        // `sql_trait_rows/<key>` is a folder in a folder.
        let loc = table
            .split('/')
            .fold(out.clone(), |loc, part| loc.child(part));
        report
            .tables
            .push(vacuum_table(&loc, &table, versions, window, dry_run).await?);
    }
    if !dry_run {
        for h in &old {
            match out.store.delete(&h.path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    report.manifests_removed = old.len();
    Ok(report)
}

/// Every file of the `sql_trait_rows/<key>` tables that no kept manifest names: the rows of
/// a SQL trait since removed (or of a run killed before its manifest). No run reads them
/// again, so their log goes too.
async fn unnamed_rows(
    out: &Location,
    keep: &BTreeMap<String, BTreeSet<u64>>,
    dry_run: bool,
) -> StoreResult<Vec<TableVacuum>> {
    let dir = out.child(manifest::SQL_TRAIT_ROWS);
    let listed = match out.store.list_with_delimiter(Some(&dir.prefix)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut done = Vec::new();
    for folder in listed.common_prefixes {
        let Some(key) = folder.filename() else {
            continue;
        };
        let table = format!("{}/{key}", manifest::SQL_TRAIT_ROWS);
        if keep.contains_key(&table) {
            continue;
        }
        let files: Vec<object_store::ObjectMeta> =
            futures::TryStreamExt::try_collect(out.store.list(Some(&folder))).await?;
        if files.is_empty() {
            continue;
        }
        let mut gone = TableVacuum {
            table,
            ..Default::default()
        };
        for f in files {
            if !dry_run {
                match out.store.delete(&f.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let rel: Vec<_> = f
                .location
                .prefix_match(&folder)
                .into_iter()
                .flatten()
                .collect();
            gone.files
                .push(rel.iter().map(|p| p.as_ref()).collect::<Vec<_>>().join("/"));
            gone.bytes += f.size;
        }
        done.push(gone);
    }
    Ok(done)
}

async fn vacuum_table(
    loc: &Location,
    table: &str,
    versions: BTreeSet<u64>,
    window: chrono::Duration,
    dry_run: bool,
) -> StoreResult<TableVacuum> {
    let kept_versions: Vec<u64> = versions.into_iter().collect();
    let mut done = TableVacuum {
        table: table.to_string(),
        kept_versions: kept_versions.clone(),
        ..Default::default()
    };
    let t = delta::open(loc).await?;
    if t.version().is_none() {
        return Ok(done); // no table here (yet)
    }
    // Plan only (dry run): Delta's vacuum would also add two commits per table.
    let (_, planned) = t
        .vacuum()
        .with_retention_period(window)
        .with_enforce_retention_duration(false)
        .with_keep_versions(&kept_versions)
        .with_mode(VacuumMode::Full)
        .with_dry_run(true)
        .await?;
    for f in planned.files_deleted {
        let rel = Path::parse(&f).map_err(|e| StoreError::Corrupt {
            what: format!("{}", loc.url),
            reason: format!("vacuum listed an unreadable path `{f}`: {e}"),
        })?;
        if rel
            .parts()
            .next()
            .is_some_and(|p| p.as_ref() == "_delta_log")
        {
            continue; // the log is Delta's own; never touched here
        }
        let path: Path = loc.prefix.parts().chain(rel.parts()).collect();
        let size = match loc.store.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if !dry_run {
            match loc.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        done.bytes += size;
        done.files.push(f);
    }
    Ok(done)
}
