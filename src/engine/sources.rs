//! Finds the tables of each source (one for `events`, a folder per table for warehouse
//! presets), registers them as DataFusion listing tables with their Hive partitions, and
//! prunes partitions outside the run's window.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::{SessionContext, col, lit};

use crate::compile::events::{SourceTable, TableKind};
use crate::error::{EngineError, EngineResult};
use crate::spec::{Preset, SourceDef};
use crate::store::objects::{self, Location};

/// Which part of the event history a run reads: partitions after `to` (as-of day) are never
/// opened, nor those before `from` when the run needs only a window.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
}

/// Opens and registers every table of `source`.
pub async fn source_tables(
    ctx: &SessionContext,
    space_root: &std::path::Path,
    source: &SourceDef,
    scope: Scope,
) -> EngineResult<Vec<SourceTable>> {
    let err = |reason: String| EngineError::Source {
        source_name: source.name.clone(),
        reason,
    };
    let loc = objects::open_raw(space_root, &source.url).map_err(|e| err(e.to_string()))?;
    super::session::register_store(ctx, &loc)?;
    let mut out = Vec::new();
    match source.preset {
        Preset::Events => {
            let scan = scan_table(ctx, &loc, &source.name, &source.partition_column, scope)
                .await
                .map_err(|e| err(e.to_string()))?;
            if let Some(scan) = scan {
                out.push(SourceTable {
                    source: source.name.clone(),
                    preset: source.preset,
                    table: source.name.clone(),
                    kind: TableKind::Events,
                    partition_column: source.partition_column.clone(),
                    scan,
                });
            }
        }
        Preset::Segment | Preset::Rudderstack => {
            let listing = loc
                .store
                .list_with_delimiter(Some(&loc.prefix))
                .await
                .map_err(|e| err(e.to_string()))?;
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
                let qualified = format!("{}.{}", source.name, name);
                let scan = scan_table(ctx, &tloc, &qualified, &source.partition_column, scope)
                    .await
                    .map_err(|e| err(format!("table `{name}`: {e}")))?;
                if let Some(scan) = scan {
                    out.push(SourceTable {
                        source: source.name.clone(),
                        preset: source.preset,
                        table: name,
                        kind,
                        partition_column: source.partition_column.clone(),
                        scan,
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err(err(format!(
            "no Parquet files under {} (preset `{}`)",
            loc.url, source.preset
        )));
    }
    Ok(out)
}

/// A scan of one listing table, filtered to the scope's partitions. None when it has no files.
async fn scan_table(
    ctx: &SessionContext,
    loc: &Location,
    name: &str,
    partition_column: &str,
    scope: Scope,
) -> EngineResult<Option<datafusion::logical_expr::LogicalPlan>> {
    let listing = loc
        .store
        .list_with_delimiter(Some(&loc.prefix))
        .await
        .map_err(|e| EngineError::Invalid(format!("cannot list {}: {e}", loc.url)))?;
    let marker = format!("{partition_column}=");
    let partitioned = listing
        .common_prefixes
        .iter()
        .any(|p| p.filename().is_some_and(|f| f.starts_with(&marker)));
    if listing.common_prefixes.is_empty() && listing.objects.is_empty() {
        return Ok(None);
    }
    let url = ListingTableUrl::parse(loc.dir_url())?;
    let mut opts =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if partitioned {
        opts = opts.with_table_partition_cols(vec![(partition_column.to_string(), DataType::Utf8)]);
    }
    // The schema comes from the files in scope only, so partitions outside the run's window
    // are never opened (not even their footers).
    let files = files_in_scope(loc, partitioned.then_some(&marker), scope).await?;
    if files.is_empty() {
        return Ok(None);
    }
    let state = ctx.state();
    let file_schema = opts
        .format
        .infer_schema(&state, &loc.store, &files)
        .await
        .map_err(|e| {
            EngineError::Invalid(format!("reading Parquet footers under {}: {e}", loc.url))
        })?;
    // The file schema, without the partition column (ListingTable appends it).
    let fields: Vec<_> = file_schema
        .fields()
        .iter()
        .filter(|f| !partitioned || f.name() != partition_column)
        .cloned()
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    if schema.fields().is_empty() {
        return Ok(None);
    }
    let config = ListingTableConfig::new(url)
        .with_listing_options(opts)
        .with_schema(schema);
    let table = ListingTable::try_new(config)?;
    let mut b = LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?;
    if partitioned {
        let pc = col(datafusion::common::Column::from_name(partition_column));
        let mut pred = pc
            .clone()
            .lt_eq(lit(scope.to.format("%Y-%m-%d").to_string()));
        if let Some(from) = scope.from {
            pred = pred.and(pc.gt_eq(lit(from.format("%Y-%m-%d").to_string())));
        }
        b = b.filter(pred)?;
    }
    Ok(Some(b.build()?))
}

/// Parquet files of a table that the scope can need: every file when the table is not
/// partitioned, else the files of `dt=` folders between the scope's days.
async fn files_in_scope(
    loc: &Location,
    partition_marker: Option<&String>,
    scope: Scope,
) -> EngineResult<Vec<object_store::ObjectMeta>> {
    use futures::TryStreamExt;
    let is_parquet = |m: &object_store::ObjectMeta| {
        m.location
            .filename()
            .is_some_and(|f| f.ends_with(".parquet") && !f.starts_with('.'))
    };
    let Some(marker) = partition_marker else {
        let all: Vec<_> = loc
            .store
            .list(Some(&loc.prefix))
            .try_collect()
            .await
            .map_err(|e| EngineError::Invalid(format!("cannot list {}: {e}", loc.url)))?;
        let mut files: Vec<_> = all.into_iter().filter(is_parquet).collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        return Ok(files);
    };
    let to = scope.to.format("%Y-%m-%d").to_string();
    let from = scope.from.map(|f| f.format("%Y-%m-%d").to_string());
    let listing = loc
        .store
        .list_with_delimiter(Some(&loc.prefix))
        .await
        .map_err(|e| EngineError::Invalid(format!("cannot list {}: {e}", loc.url)))?;
    let mut files = Vec::new();
    for p in listing.common_prefixes {
        let Some(value) = p.filename().and_then(|f| f.strip_prefix(marker.as_str())) else {
            continue;
        };
        if value > to.as_str() || from.as_deref().is_some_and(|f| value < f) {
            continue;
        }
        let part: Vec<_> = loc
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| EngineError::Invalid(format!("cannot list {}: {e}", loc.url)))?;
        files.extend(part.into_iter().filter(is_parquet));
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}
