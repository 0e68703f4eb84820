//! Delta Lake tables in an object store: open, overwrite from a plan or batches, read a version.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};

use super::objects::Location;
use crate::error::{StoreError, StoreResult};

fn builder(loc: &Location) -> StoreResult<DeltaTableBuilder> {
    super::objects::register_delta_handlers();
    Ok(DeltaTableBuilder::from_url(loc.url.clone())?
        .with_storage_backend(loc.store.clone(), loc.store_url()))
}

/// Opens the table at `loc`, or an uninitialized handle when no table exists there yet.
pub async fn open(loc: &Location) -> StoreResult<DeltaTable> {
    if let Some(dir) = loc.local_dir() {
        // Local tables need their folder before the first commit; object stores do not.
        std::fs::create_dir_all(&dir)?;
    }
    let mut table = builder(loc)?.build()?;
    match table.load().await {
        Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
        Err(e) => Err(e.into()),
    }
}

/// Opens the table at `loc` as of `version`.
pub async fn open_version(loc: &Location, version: u64) -> StoreResult<DeltaTable> {
    let mut table = builder(loc)?.build()?;
    table.load_version(version).await?;
    Ok(table)
}

/// A write of what `plan` produces into the table at `loc`, replacing rows (save mode
/// overwrite); callers say which rows and how the schema may change.
async fn plan_write(
    loc: &Location,
    plan: LogicalPlan,
    state: &SessionState,
) -> StoreResult<deltalake::operations::write::WriteBuilder> {
    Ok(open(loc)
        .await?
        .write(Vec::<RecordBatch>::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(state.clone()))
        .with_save_mode(SaveMode::Overwrite))
}

/// Replaces the table's contents (and schema) with what `plan` produces, in one commit.
/// Returns the new version.
pub async fn overwrite_from_plan(
    loc: &Location,
    plan: LogicalPlan,
    state: &SessionState,
) -> StoreResult<u64> {
    let table = plan_write(loc, plan, state)
        .await?
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .await?;
    version_of(&table)
}

/// [`overwrite_from_plan`] into a table partitioned by `columns` (one folder per value).
pub async fn overwrite_partitioned(
    loc: &Location,
    plan: LogicalPlan,
    state: &SessionState,
    columns: &[&str],
) -> StoreResult<u64> {
    let table = plan_write(loc, plan, state)
        .await?
        .with_partition_columns(columns.iter().map(|c| c.to_string()))
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .await?;
    version_of(&table)
}

/// Replaces the rows of the table where `predicate` holds (a predicate on partition columns
/// removes whole files) with what `plan` produces, whose rows all satisfy it, in one commit.
pub async fn replace_where(
    loc: &Location,
    plan: LogicalPlan,
    state: &SessionState,
    predicate: datafusion::prelude::Expr,
) -> StoreResult<u64> {
    let table = plan_write(loc, plan, state)
        .await?
        .with_replace_where(predicate)
        .await?;
    version_of(&table)
}

/// Replaces the table's contents (and schema) with `batches`, in one commit.
pub async fn overwrite_batches(loc: &Location, batches: Vec<RecordBatch>) -> StoreResult<u64> {
    let table = open(loc).await?;
    let table = table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .await?;
    version_of(&table)
}

fn version_of(table: &DeltaTable) -> StoreResult<u64> {
    table.version().ok_or_else(|| StoreError::Corrupt {
        what: "delta table".into(),
        reason: "no version after a commit".into(),
    })
}

/// A DataFusion table provider for `loc` at `version`.
pub async fn provider(loc: &Location, version: u64) -> StoreResult<Arc<dyn TableProvider>> {
    let table = open_version(loc, version).await?;
    Ok(table.table_provider().await?)
}
