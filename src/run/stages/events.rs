//! Stage 1, events: every source read (file by file, see [`crate::run::files`]), normalized,
//! classified and deduplicated into the `events` view and one view per source, with the
//! counts the run record keeps.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionContext, col, lit};

use crate::error::{EngineError, EngineResult};
use crate::plan::events as ev;
use crate::run::ctx::RunCtx;
use crate::run::record::RunRecord;
use crate::run::sink::{StageSink, materialize};
use crate::run::tables::stage;
use crate::run::{files, sources};
use crate::spec::Space;

/// What the events stage hands on (besides the `events` view and the source views).
pub struct EventsOut {
    /// Every source row, classified (with `error_reason`), as the run reads it back from
    /// scratch: what `event_errors` is made of.
    pub classified: LogicalPlan,
    /// The same rows as read from the sources (what a script computes `event_errors` from).
    pub classified_as_read: LogicalPlan,
}

/// Stage 1: reads every source into the `events` view (files it cannot read fail the run or,
/// with `--skip-bad-files`, go into the record) and counts what it read into the record.
pub async fn run(ctx: &mut RunCtx<'_>) -> EngineResult<EventsOut> {
    let bad = if ctx.opts.skip_bad_files {
        sources::BadFiles::Skip
    } else {
        sources::BadFiles::Fail
    };
    let scratch = ctx.scratch.clone();
    let read = read_into(
        &ctx.session,
        &mut ctx.sink,
        ctx.space,
        ctx.as_of,
        ctx.opts.window_days,
        Some(scratch.path()),
        bad,
    )
    .await?;
    ctx.rec.skipped_files = read.skipped;
    event_counts(
        &ctx.session,
        &read.classified,
        ctx.as_of.timestamp_micros(),
        ctx.rec,
    )
    .await?;
    Ok(EventsOut {
        classified: read.classified,
        classified_as_read: read.classified_as_read,
    })
}

/// Reads every source, registers the `events` view (good, deduplicated events up to `as_of`)
/// and one view per source name, and returns the classified plan (every row, with
/// `error_reason`). An unreadable source file fails it, naming the file.
pub async fn register_events(
    ctx: &SessionContext,
    space: &Space,
    as_of: DateTime<Utc>,
    window_days: Option<u32>,
    scratch: Option<&Path>,
) -> EngineResult<LogicalPlan> {
    let bad = sources::BadFiles::Fail;
    Ok(read_events(ctx, space, as_of, window_days, scratch, bad)
        .await?
        .0)
}

/// [`register_events`] with a policy for unreadable files; also returns the files set aside.
pub async fn read_events(
    ctx: &SessionContext,
    space: &Space,
    as_of: DateTime<Utc>,
    window_days: Option<u32>,
    scratch: Option<&Path>,
    bad: sources::BadFiles,
) -> EngineResult<(LogicalPlan, Vec<files::SkippedFile>)> {
    let sink = &mut StageSink::Materialize;
    let read = read_into(ctx, sink, space, as_of, window_days, scratch, bad).await?;
    Ok((read.classified, read.skipped))
}

struct Read {
    classified: LogicalPlan,
    classified_as_read: LogicalPlan,
    skipped: Vec<files::SkippedFile>,
}

/// Footers that cannot be read are found when the files are opened. Pages that cannot be
/// decoded are found only while reading: when writing the classified rows to `scratch`
/// fails, each file is read alone to find the culprits, which then fail the run by name or,
/// with [`sources::BadFiles::Skip`], are set aside and the stage starts over without them.
async fn read_into(
    ctx: &SessionContext,
    sink: &mut StageSink,
    space: &Space,
    as_of: DateTime<Utc>,
    window_days: Option<u32>,
    scratch: Option<&Path>,
    bad: sources::BadFiles,
) -> EngineResult<Read> {
    let scope = sources::Scope {
        from: window_days.map(|d| as_of - chrono::Duration::days(i64::from(d))),
        to: as_of,
    };
    // A script reads each source as one table of its engine: one scan per source table.
    let one_scan = sink.recording();
    let mut exclude: Vec<files::SkippedFile> = Vec::new();
    let (classified, classified_as_read, skipped) = loop {
        let mut tables = Vec::new();
        let mut read_files = Vec::new();
        let mut skipped = exclude.clone();
        for s in &space.sources {
            let r =
                sources::source_tables(ctx, &space.root, s, scope, bad, &exclude, one_scan).await?;
            tables.extend(r.tables);
            read_files.extend(r.files);
            skipped.extend(r.skipped);
        }
        let normalized = ev::union_tables(&tables)?
            .ok_or_else(|| EngineError::Definition("the space has no source tables".into()))?;
        let classified = ev::classify(normalized)?;
        let Some(dir) = scratch else {
            break (classified.clone(), classified, skipped);
        };
        let dir = dir.join(stage::CLASSIFIED);
        match materialize(ctx, classified.clone(), &dir).await {
            Ok(plan) => break (plan, classified, skipped),
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
    let as_of_micros = as_of.timestamp_micros();
    if sink.recording() {
        sink.table(
            stage::EVENTS,
            &ev::valid_events(classified_as_read.clone(), as_of_micros)?,
        );
    }
    let valid = ev::valid_events(classified.clone(), as_of_micros)?;
    ctx.register_table(
        stage::EVENTS,
        ctx.execute_logical_plan(valid).await?.into_view(),
    )?;
    for s in &space.sources {
        let per_source =
            LogicalPlanBuilder::from(ctx.table(stage::EVENTS).await?.into_unoptimized_plan())
                .filter(col("source").eq(lit(s.name.as_str())))?
                .build()?;
        sink.view(ctx, &s.name, per_source).await?;
    }
    Ok(Read {
        classified,
        classified_as_read,
        skipped,
    })
}

/// Counts rows per source/type/reason, duplicates and rows after as_of, into the record.
async fn event_counts(
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
    let per_type =
        LogicalPlanBuilder::from(ctx.table(stage::EVENTS).await?.into_unoptimized_plan())
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
