//! Delta Lake tables in an object store: open, overwrite from a plan or batches, read a version.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
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
async fn overwrite_partitioned(
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

/// [`overwrite_partitioned`] from `parts` (plans of the same schema whose rows have disjoint
/// values of `columns`; one part is the plain overwrite), written one after another: the first
/// part replaces the table and each later one is appended, one commit each. Only the last version returned holds all the
/// rows, and the manifest names only that one. delta-rs keeps a file open for every partition
/// value a write sees until it ends; written in parts, only a part's files are open at once.
pub async fn overwrite_partitioned_parts(
    loc: &Location,
    parts: Vec<LogicalPlan>,
    state: &SessionState,
    columns: &[&str],
) -> StoreResult<u64> {
    let empty = |p: &LogicalPlan| matches!(p, LogicalPlan::EmptyRelation(_));
    // A part no row fell in adds nothing: no commit for it. The table's schema comes from a
    // part with rows when there is one (all read back alike).
    let (mut full, empties): (Vec<_>, Vec<_>) = parts.into_iter().partition(|p| !empty(p));
    let first = match full.is_empty() {
        true => empties.into_iter().next(),
        false => Some(full.remove(0)),
    };
    let first = first.ok_or_else(|| StoreError::Corrupt {
        what: "delta write".into(),
        reason: "no part to write".into(),
    })?;
    let mut version = overwrite_partitioned(loc, first, state, columns).await?;
    for plan in full {
        let table = open(loc)
            .await?
            .write(Vec::<RecordBatch>::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(state.clone()))
            .with_save_mode(SaveMode::Append)
            .with_partition_columns(columns.iter().map(|c| c.to_string()))
            .await?;
        version = version_of(&table)?;
    }
    Ok(version)
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

/// Appends what `plan` produces to the table at `loc` in one commit, when the table's latest
/// version is `at` and its columns are `plan`'s (names and types). Returns the new version, or
/// None, having written nothing, when a commit came after `at` or the columns differ.
pub async fn append_at(
    loc: &Location,
    plan: LogicalPlan,
    state: &SessionState,
    at: u64,
) -> StoreResult<Option<u64>> {
    let table = open(loc).await?;
    if table.version() != Some(at) {
        return Ok(None);
    }
    let provider = table.table_provider().await?;
    let (have, want) = (provider.schema(), plan.schema().as_arrow().clone());
    let same = have.fields().len() == want.fields().len()
        && have
            .fields()
            .iter()
            .zip(want.fields())
            .all(|(a, b)| a.name() == b.name() && same_type(a.data_type(), b.data_type()));
    if !same {
        tracing::debug!(%have, %want, "not appended: the columns differ");
        return Ok(None);
    }
    let table = table
        .write(Vec::<RecordBatch>::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(state.clone()))
        .with_save_mode(SaveMode::Append)
        .await?;
    Ok(Some(version_of(&table)?))
}

/// Whether a column of type `a` and one of type `b` are stored as the same Delta type (a
/// table's strings read back as views, for one).
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Utf8 | Utf8View | LargeUtf8, Utf8 | Utf8View | LargeUtf8) => true,
        // A partition column reads back dictionary-encoded.
        (Dictionary(_, x), y) | (y, Dictionary(_, x)) => same_type(x, y),
        (Binary | BinaryView | LargeBinary, Binary | BinaryView | LargeBinary) => true,
        (List(x) | LargeList(x) | ListView(x), List(y) | LargeList(y) | ListView(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(x, y)| x.name() == y.name() && same_type(x.data_type(), y.data_type()))
        }
        _ => a == b,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    #[test]
    fn types_compare_as_delta_stores_them() {
        use DataType::*;
        let dict = Dictionary(Box::new(UInt16), Box::new(Utf8));
        let list = |t: DataType| List(Arc::new(Field::new("item", t, true)));
        for (a, b, same) in [
            (Utf8, Utf8View, true),
            (dict.clone(), Utf8, true),
            (Utf8View, dict.clone(), true),
            (dict, Int64, false),
            (list(Utf8View), list(Utf8), true),
            (list(Int64), list(Utf8), false),
            (Int32, Int64, false),
        ] {
            assert_eq!(same_type(&a, &b), same, "{a} / {b}");
        }
    }
}
