//! Finds the tables of each source (one for `events`, a folder per table for warehouse
//! presets) and the Parquet files of each table that the run's window can need, reads each
//! file's schema, and makes one scan per group of files that share a schema (see
//! [`super::files`]). A file that cannot be read fails the run naming it, or is set aside with
//! `--skip-bad-files`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::SessionContext;

use super::files::{self, FileListTable, SkippedFile, SourceFile};
use super::ingest::IngestLog;
use crate::error::{EngineError, EngineResult, StoreError};
use crate::plan::events::{SourceTable, TableKind};
use crate::spec::{Preset, SourceDef};
use crate::store::objects::{self, Location};

/// Which part of the event history a run reads: partitions after `to` (as-of day) are never
/// opened, nor those before `from` when the run needs only a window.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
}

/// What to do with a file that cannot be read (not Parquet, empty, truncated, corrupt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadFiles {
    /// Fail the run, naming the file and why (the default: a run never quietly leaves data
    /// out).
    #[default]
    Fail,
    /// Set the file aside, list it in the run record and in `event_errors`, read the rest.
    Skip,
}

/// The scans of one source, and the files behind them.
#[derive(Default)]
pub struct SourceRead {
    pub tables: Vec<SourceTable>,
    /// Every file scanned, with the schema of its scan (to read it alone after a failure).
    pub files: Vec<(SchemaRef, SourceFile)>,
    /// Files set aside (only with [`BadFiles::Skip`]).
    pub skipped: Vec<SkippedFile>,
    /// Every file the table's listing found in scope, read or not (to check the ingestion
    /// log against).
    pub listed: Vec<SourceFile>,
    /// How many listed files were not opened because the ingestion log holds them as they are.
    pub known: usize,
}

/// Opens every table of `source`. Files named in `exclude` (already found unreadable by the
/// caller) are not opened again, nor reported again. With `one_scan`, the files of a table
/// with several schemas are read as one scan of every column (as a script's engine reads
/// them: one table), else one scan per schema. Files that `known` holds as they are now are
/// listed but not opened (an incremental run reads only new files).
#[allow(clippy::too_many_arguments)]
pub async fn source_tables(
    ctx: &SessionContext,
    space_root: &std::path::Path,
    source: &SourceDef,
    scope: Scope,
    bad: BadFiles,
    exclude: &[SkippedFile],
    one_scan: bool,
    known: Option<&IngestLog>,
) -> EngineResult<SourceRead> {
    let err = |reason: String| EngineError::Source {
        source_name: source.name.clone(),
        reason,
    };
    let loc = objects::open_raw(space_root, &source.url).map_err(|e| err(e.to_string()))?;
    super::session::register_store(ctx, &loc)?;
    let mut read = SourceRead::default();
    let mut found: Vec<SkippedFile> = Vec::new();
    match source.preset {
        Preset::Events => {
            scan_table(
                ctx,
                &loc,
                source,
                TableKind::Events,
                &source.name,
                scope,
                exclude,
                one_scan,
                known,
                &mut read,
                &mut found,
            )
            .await
            .map_err(|e| err(e.to_string()))?;
        }
        Preset::Segment | Preset::Rudderstack => {
            let listing = loc
                .store
                .list_with_delimiter(Some(&loc.prefix))
                .await
                .map_err(|e| err(e.to_string()))?;
            // A file beside the table folders belongs to no table: say so rather than
            // leave its rows out without a word.
            for o in &listing.objects {
                if is_parquet(o) {
                    let f = SourceFile::new(&source.name, "", &loc, o.clone())?;
                    found.push(f.skipped(format!(
                        "a Parquet file at the root of a `{}` source belongs to no table \
                         (each table is a folder: tracks/, identifies/, ...)",
                        source.preset
                    )));
                }
            }
            let mut names: Vec<String> = listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .filter(|n| !n.starts_with('_') && !n.starts_with('.') && !n.contains('='))
                .collect();
            names.sort();
            for name in names {
                let Some(kind) = TableKind::of_warehouse_table(&name) else {
                    continue;
                };
                let tloc = loc.child(&name);
                scan_table(
                    ctx, &tloc, source, kind, &name, scope, exclude, one_scan, known, &mut read,
                    &mut found,
                )
                .await
                .map_err(|e| err(format!("table `{name}`: {e}")))?;
            }
        }
    }
    // Files found unreadable before (by the caller) stay set aside under their first reason.
    found.retain(|f| !exclude.iter().any(|x| x.file == f.file));
    let excluded = exclude.iter().filter(|x| x.source == source.name).count();
    if bad == BadFiles::Fail
        && let Some(first) = found.first()
    {
        return Err(err(bad_file_message(first, found.len())));
    }
    read.skipped = found;
    if read.tables.is_empty() && read.known == 0 {
        let aside = match read.skipped.len() + excluded {
            0 => String::new(),
            n => format!(" ({n} unreadable files set aside)"),
        };
        return Err(err(format!(
            "no readable Parquet files under {} (preset `{}`){aside}",
            loc.url, source.preset
        )));
    }
    Ok(read)
}

/// The error of a run that stops at an unreadable file.
pub fn bad_file_message(first: &SkippedFile, count: usize) -> String {
    let more = match count {
        0 | 1 => String::new(),
        n => format!(" (and {} more unreadable files)", n - 1),
    };
    format!(
        "cannot read {}: {}{more}; fix or remove the file, or run with --skip-bad-files to \
         set unreadable files aside (they are listed in the run record and event_errors)",
        first.file, first.reason
    )
}

/// Scans of one table: its files in scope, grouped by schema, one scan per group. Files
/// that cannot be read go to `bad`.
#[allow(clippy::too_many_arguments)]
async fn scan_table(
    ctx: &SessionContext,
    loc: &Location,
    source: &SourceDef,
    kind: TableKind,
    table: &str,
    scope: Scope,
    exclude: &[SkippedFile],
    one_scan: bool,
    known: Option<&IngestLog>,
    read: &mut SourceRead,
    bad: &mut Vec<SkippedFile>,
) -> EngineResult<()> {
    let marker = format!("{}=", source.partition_column);
    let mut files = Vec::new();
    for meta in files_in_scope(loc, &marker, scope).await? {
        let f = SourceFile::new(&source.name, table, loc, meta)?;
        read.listed.push(f.clone());
        if known.is_some_and(|k| k.knows(&f)) {
            read.known += 1;
        } else if !exclude.iter().any(|x| x.file == f.shown) {
            files.push(f);
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let state = ctx.state();
    let mut readable = Vec::new();
    for (f, schema) in files::file_schemas(&state, files).await {
        match schema {
            Ok(s) if s.fields().is_empty() => bad.push(f.skipped("the file has no columns")),
            Ok(s) => readable.push((f, s)),
            Err(reason) => bad.push(f.skipped(reason)),
        }
    }
    let mut groups = files::group_by_schema(readable);
    if one_scan && groups.len() > 1 {
        // A script reads the source as one table of the target engine: one scan.
        groups = vec![merged(groups)];
    }
    // Scans are named `source` or `source.table`, as SQL and scripts know them.
    let name = match kind {
        TableKind::Events => source.name.clone(),
        _ => format!("{}.{}", source.name, table),
    };
    for (schema, group) in groups {
        let provider = Arc::new(FileListTable::new(schema.clone(), &group));
        let scan: LogicalPlan =
            LogicalPlanBuilder::scan(name.as_str(), provider_as_source(provider), None)?.build()?;
        read.tables.push(SourceTable {
            source: source.name.clone(),
            preset: source.preset,
            table: table.to_string(),
            kind,
            partition_column: source.partition_column.clone(),
            scan,
        });
        read.files
            .extend(group.into_iter().map(|f| (schema.clone(), f)));
    }
    Ok(())
}

/// One group of all groups: every column, with the type of its first group.
fn merged(groups: Vec<(SchemaRef, Vec<SourceFile>)>) -> (SchemaRef, Vec<SourceFile>) {
    let mut fields = Vec::new();
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for (schema, files) in groups {
        for f in schema.fields() {
            if seen.insert(f.name().clone()) {
                fields.push(f.clone());
            }
        }
        all.extend(files);
    }
    (Arc::new(Schema::new(fields)), all)
}

fn is_parquet(m: &object_store::ObjectMeta) -> bool {
    m.location
        .filename()
        .is_some_and(|f| f.ends_with(".parquet") && !f.starts_with('.') && !f.starts_with('_'))
}

/// Parquet files of a table that the scope can need: the files of `dt=` folders between the
/// scope's days, and every other file (at the table's root, or in folders that are not
/// partitions), which no partition value can rule out. Hidden folders (`_...`, `.…`) are not
/// data.
async fn files_in_scope(
    loc: &Location,
    marker: &str,
    scope: Scope,
) -> EngineResult<Vec<object_store::ObjectMeta>> {
    use futures::TryStreamExt;
    let to = scope.to.format("%Y-%m-%d").to_string();
    let from = scope.from.map(|f| f.format("%Y-%m-%d").to_string());
    let listing = loc
        .store
        .list_with_delimiter(Some(&loc.prefix))
        .await
        .map_err(|cause| StoreError::List {
            url: loc.url.to_string(),
            cause,
        })?;
    let mut files: Vec<_> = listing.objects.into_iter().filter(is_parquet).collect();
    for p in listing.common_prefixes {
        let Some(folder) = p.filename() else {
            continue;
        };
        if folder.starts_with('_') || folder.starts_with('.') {
            continue;
        }
        if let Some(value) = folder.strip_prefix(marker)
            && (value > to.as_str() || from.as_deref().is_some_and(|f| value < f))
        {
            continue;
        }
        let part: Vec<_> = loc
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|cause| StoreError::List {
                url: loc.url.to_string(),
                cause,
            })?;
        files.extend(part.into_iter().filter(|m| {
            is_parquet(m)
                && !m
                    .location
                    .prefix_match(&p)
                    .into_iter()
                    .flatten()
                    .any(|part| part.as_ref().starts_with('_') || part.as_ref().starts_with('.'))
        }));
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}
