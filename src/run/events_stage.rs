//! Stage 1, events: every source read (file by file, see [`super::files`]), normalized,
//! classified and deduplicated into the `events` view and one view per source, with the
//! counts the run record keeps; and the scratch materialization later stages share.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionContext, col, lit};

use super::record::RunRecord;
use super::{capture, files, sources};
use crate::error::{EngineError, EngineResult};
use crate::plan::events as ev;
use crate::spec::Space;

/// Stage 1: reads every source, registers the `events` view (good, deduplicated events up to
/// `as_of`) and one view per source name, and returns the classified plan (every row, with
/// `error_reason`). An unreadable source file fails it, naming the file.
pub async fn register_events(
    ctx: &SessionContext,
    space: &Space,
    as_of: DateTime<Utc>,
    window_days: Option<u32>,
    scratch: Option<&std::path::Path>,
) -> EngineResult<LogicalPlan> {
    let bad = sources::BadFiles::Fail;
    Ok(read_events(ctx, space, as_of, window_days, scratch, bad)
        .await?
        .0)
}

/// [`register_events`] with a policy for unreadable files; also returns the files set aside.
///
/// Footers that cannot be read are found when the files are opened. Pages that cannot be
/// decoded are found only while reading: when writing the classified rows to `scratch`
/// fails, each file is read alone to find the culprits, which then fail the run by name or,
/// with [`sources::BadFiles::Skip`], are set aside and the stage starts over without them.
pub async fn read_events(
    ctx: &SessionContext,
    space: &Space,
    as_of: DateTime<Utc>,
    window_days: Option<u32>,
    scratch: Option<&std::path::Path>,
    bad: sources::BadFiles,
) -> EngineResult<(LogicalPlan, Vec<files::SkippedFile>)> {
    let scope = sources::Scope {
        from: window_days.map(|d| as_of - chrono::Duration::days(i64::from(d))),
        to: as_of,
    };
    let mut exclude: Vec<files::SkippedFile> = Vec::new();
    let (classified, skipped) = loop {
        let mut tables = Vec::new();
        let mut read_files = Vec::new();
        let mut skipped = exclude.clone();
        for s in &space.sources {
            let r = sources::source_tables(ctx, &space.root, s, scope, bad, &exclude).await?;
            tables.extend(r.tables);
            read_files.extend(r.files);
            skipped.extend(r.skipped);
        }
        let normalized = ev::union_tables(&tables)?
            .ok_or_else(|| EngineError::Invalid("the space has no source tables".into()))?;
        let classified = ev::classify(normalized)?;
        let Some(dir) = scratch else {
            break (classified, skipped);
        };
        let dir = dir.join("classified");
        match materialize(ctx, classified, &dir).await {
            Ok(plan) => break (plan, skipped),
            Err(EngineError::DataFusion(e)) if files::may_be_bad_file(&e) => {
                let found = files::probe(ctx, &read_files).await?;
                let Some(first) = found.first() else {
                    return Err(e.into());
                };
                if bad == sources::BadFiles::Fail {
                    return Err(EngineError::Source {
                        source_name: first.source.clone(),
                        reason: sources::bad_file_message(first, found.len()),
                    });
                }
                let _ = std::fs::remove_dir_all(&dir);
                exclude = skipped;
                exclude.extend(found);
            }
            Err(e) => return Err(e),
        }
    };
    let valid = ev::valid_events(classified.clone(), as_of.timestamp_micros())?;
    capture::table(ctx, "events", &valid);
    ctx.register_table(
        "events",
        ctx.execute_logical_plan(valid.clone()).await?.into_view(),
    )?;
    for s in &space.sources {
        let per_source =
            LogicalPlanBuilder::from(ctx.table("events").await?.into_unoptimized_plan())
                .filter(col("source").eq(lit(s.name.as_str())))?
                .build()?;
        capture::table(ctx, &s.name, &per_source);
        ctx.register_table(
            s.name.as_str(),
            ctx.execute_logical_plan(per_source).await?.into_view(),
        )?;
    }
    Ok((classified, skipped))
}

/// Counts rows per source/type/reason, duplicates and rows after as_of, into the record.
pub(super) async fn event_counts(
    ctx: &SessionContext,
    classified: &LogicalPlan,
    as_of_micros: i64,
    rec: &mut RunRecord,
) -> EngineResult<()> {
    let as_of = lit(datafusion::common::ScalarValue::TimestampMicrosecond(
        Some(as_of_micros),
        Some(Arc::from("UTC")),
    ));
    let after = col("timestamp").gt(as_of);
    let by_group = LogicalPlanBuilder::from(classified.clone())
        .project(vec![
            col("source"),
            col("type"),
            col("error_reason"),
            datafusion::logical_expr::when(col("error_reason").is_null().and(after), lit(true))
                .otherwise(lit(false))?
                .alias("after_as_of"),
        ])?
        .aggregate(
            vec![
                col("source"),
                col("type"),
                col("error_reason"),
                col("after_as_of"),
            ],
            vec![count(lit(1)).alias("n")],
        )?
        .build()?;
    let batches = ctx.execute_logical_plan(by_group).await?.collect().await?;
    // Distinct good message ids overall (a duplicate may span sources).
    let mut good_rows = 0i64;
    for b in &batches {
        let reason = b.column(2).as_string::<i32>();
        let after = b.column(3).as_boolean();
        let n = b.column(4).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let n = n.value(i);
            rec.rows_read += n;
            if !reason.is_null(i) {
                rec.bad_events += n;
                *rec.errors_by_reason
                    .entry(reason.value(i).to_string())
                    .or_default() += n;
            } else if after.value(i) {
                rec.after_as_of += n;
            } else {
                good_rows += n;
            }
        }
    }
    // Distinct events per source/type after dedupe: count the event view itself.
    let per_type = LogicalPlanBuilder::from(ctx.table("events").await?.into_unoptimized_plan())
        .aggregate(
            vec![col("source"), col("type")],
            vec![count(lit(1)).alias("n")],
        )?
        .build()?;
    let batches: Vec<RecordBatch> = ctx.execute_logical_plan(per_type).await?.collect().await?;
    let mut distinct = 0i64;
    for b in &batches {
        let source = b.column(0).as_string::<i32>();
        let ty = b.column(1).as_string::<i32>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            distinct += n.value(i);
            rec.events_by_source_type
                .insert(format!("{}/{}", source.value(i), ty.value(i)), n.value(i));
        }
    }
    rec.events = distinct;
    rec.duplicates = good_rows - distinct;
    Ok(())
}

/// Registers `plan` as `name`, written once to the scratch folder (when there is one) so that
/// the later readers of `name` (counts, other stages, the publish) do not compute it again.
pub(crate) async fn keep(
    ctx: &SessionContext,
    plan: LogicalPlan,
    name: &str,
    scratch: Option<&std::path::Path>,
) -> EngineResult<()> {
    capture::table(ctx, name, &plan);
    let plan = match scratch {
        Some(dir) => materialize(ctx, plan, &dir.join(name)).await?,
        None => plan,
    };
    ctx.register_table(name, ctx.execute_logical_plan(plan).await?.into_view())?;
    Ok(())
}

/// Writes `plan`'s rows once to Parquet files in `dir` and returns a scan of them, so that
/// later passes read a few local files instead of re-reading (and re-parsing) every source.
pub(crate) async fn materialize(
    ctx: &SessionContext,
    plan: LogicalPlan,
    dir: &std::path::Path,
) -> EngineResult<LogicalPlan> {
    std::fs::create_dir_all(dir).map_err(crate::error::StoreError::from)?;
    let path = format!("{}/", dir.display());
    let mut options = datafusion::config::TableParquetOptions::default();
    options.global.compression = Some("snappy".into());
    // Small row groups and one serializer per file keep the writer's buffers small, so a run
    // under a tight memory limit spends its budget on sorts and aggregates, which can spill.
    options.global.allow_single_file_parallelism = false;
    options.global.max_row_group_size = 4096;
    let schema = Arc::clone(plan.schema());
    let written = ctx
        .execute_logical_plan(plan)
        .await?
        .write_parquet(
            &path,
            datafusion::dataframe::DataFrameWriteOptions::new(),
            Some(options),
        )
        .await?;
    let rows: u64 = written
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        })
        .flat_map(|c| c.iter().flatten())
        .sum();
    if rows == 0 {
        // No rows, no files: there is nothing to read back (nor a schema to infer from).
        return Ok(LogicalPlan::EmptyRelation(
            datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema,
            },
        ));
    }
    let read = ctx
        .read_parquet(path, datafusion::prelude::ParquetReadOptions::default())
        .await?;
    Ok(read.into_unoptimized_plan())
}
