//! The stage's two queries that group every event, run one bucket of events at a time.
//!
//! `edges.sql` and `event_profiles.sql` group the occurrences by message id: at 100 M events
//! that is 100 M groups, and a join with one row per event on its build side, which a hash
//! join must hold whole (see ../shared/NOTES.md). When the run's occurrences are written in
//! buckets of message ids (every occurrence of one event in the same bucket), each query runs
//! once per bucket, with `id_occurrences` standing for that bucket's rows: an event's group and
//! its join partners are all in its bucket, so the buckets' results together are the query's.
//! Edges are made distinct again over all buckets; event profiles, one row per event, are
//! appended to Parquet files in the run's scratch folder instead of memory.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::components::materialize;
use crate::store::scratch;

/// The run's occurrences, in buckets of message ids.
#[derive(Clone, Debug)]
pub struct EventBuckets {
    /// Each bucket's occurrences (the columns of `id_occurrences`).
    pub parts: Vec<LogicalPlan>,
    /// A folder of the run's scratch space the per-event tables are written to.
    pub dir: PathBuf,
}

const OCCURRENCES: &str = "id_occurrences";

/// `edges_sql` (distinct edges) over every bucket, made distinct over all of them.
pub async fn edges(
    ctx: &SessionContext,
    buckets: &EventBuckets,
    edges_sql: &str,
) -> Result<(Arc<MemTable>, u64)> {
    let (schema, plans) = per_bucket(ctx, buckets, edges_sql).await?;
    let mut batches = Vec::new();
    for df in plans {
        batches.extend(df.collect().await?);
    }
    ctx.register_table(
        "id_edge_parts",
        Arc::new(MemTable::try_new(schema, vec![batches])?),
    )?;
    let edges =
        async { materialize(ctx.sql("SELECT DISTINCT a, b FROM id_edge_parts").await?).await }
            .await;
    ctx.deregister_table("id_edge_parts")?;
    edges
}

/// `event_profiles_sql` over every bucket, written to `event_profiles/` under the buckets'
/// folder and read from there.
pub async fn event_profiles(
    ctx: &SessionContext,
    buckets: &EventBuckets,
    event_profiles_sql: &str,
) -> Result<Arc<dyn TableProvider>> {
    let (schema, plans) = per_bucket(ctx, buckets, event_profiles_sql).await?;
    written(ctx, buckets, "event_profiles", schema, plans).await
}

/// `sql`, a table with a row per identifier that the rest of the run reads (identities,
/// components), written to `name/` under the buckets' folder and read from there: at 100 M
/// events they are some 7 M rows, which a run too big for its limit keeps on disk.
pub async fn on_disk(
    ctx: &SessionContext,
    buckets: &EventBuckets,
    name: &str,
    sql: &str,
) -> Result<Arc<dyn TableProvider>> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    written(ctx, buckets, name, schema, vec![df]).await
}

/// The rows of `plans` appended to Parquet in `name/` under the buckets' folder, read back.
async fn written(
    ctx: &SessionContext,
    buckets: &EventBuckets,
    name: &str,
    schema: SchemaRef,
    plans: Vec<DataFrame>,
) -> Result<Arc<dyn TableProvider>> {
    let dir = buckets.dir.join(name);
    std::fs::create_dir_all(&dir)?;
    let path = format!("{}/", dir.display());
    let mut rows = 0u64;
    for df in plans {
        let options = scratch::parquet_options();
        let written = df
            .write_parquet(&path, DataFrameWriteOptions::new(), Some(options))
            .await?;
        rows += scratch::rows_written(&written);
    }
    if rows == 0 {
        // No rows, no files to read back.
        return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
    }
    let df = ctx
        .read_parquet(path, ParquetReadOptions::default())
        .await?;
    Ok(df.into_view())
}

/// `sql` planned once per bucket, with `id_occurrences` standing for that bucket (a plan
/// keeps the table it was planned against); `id_occurrences` is the whole table again
/// afterwards, also on error. Also returns the result's schema.
async fn per_bucket(
    ctx: &SessionContext,
    buckets: &EventBuckets,
    sql: &str,
) -> Result<(SchemaRef, Vec<DataFrame>)> {
    let whole = ctx.deregister_table(OCCURRENCES)?;
    let planned = async {
        let mut plans = Vec::with_capacity(buckets.parts.len());
        for part in &buckets.parts {
            ctx.deregister_table(OCCURRENCES)?;
            let view = ctx.execute_logical_plan(part.clone()).await?.into_view();
            ctx.register_table(OCCURRENCES, view)?;
            plans.push(ctx.sql(sql).await?);
        }
        Ok::<_, DataFusionError>(plans)
    }
    .await;
    ctx.deregister_table(OCCURRENCES)?;
    if let Some(whole) = whole {
        ctx.register_table(OCCURRENCES, whole)?;
    }
    let plans: Vec<DataFrame> = planned?;
    let schema = match plans.first() {
        Some(df) => Arc::new(df.schema().as_arrow().clone()),
        None => return internal_err!("no buckets of occurrences"),
    };
    Ok((schema, plans))
}
