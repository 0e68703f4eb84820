//! Stage 1, events: the source files a run has not ingested yet read (file by file, see
//! [`crate::run::files`]), normalized, classified and deduplicated into the event history
//! the previous run left (or every file into a new history, see [`crate::run::history`]);
//! the `events` view (the history up to as-of) and one view per source, with the counts the
//! run record keeps. A script (`compile --script`) always reads every file.

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
use crate::plan::history as hp;
use crate::run::ctx::RunCtx;
use crate::run::ingest::IngestLog;
use crate::run::record::RunRecord;
use crate::run::sink::{StageSink, materialize};
use crate::run::tables::stage;
use crate::run::{events_table, history};
use crate::run::{files, sources};
use crate::spec::Space;

/// What the events stage hands on (besides the `events` view and the source views).
pub struct EventsOut {
    /// The rows this run read from the sources, classified (with `error_reason`), as the run
    /// reads them back from scratch: what `event_errors` gets this run. None when an
    /// incremental run found no new file.
    pub classified: Option<LogicalPlan>,
    /// The same rows as read from the sources (what a script computes `event_errors` from).
    pub classified_as_read: Option<LogicalPlan>,
    /// `event_errors` of the previous run, when this run extends its history (its rows stay).
    pub previous_errors: Option<LogicalPlan>,
    /// The ingestion log after this run, to publish (None for a script).
    pub log: Option<RecordBatch>,
    /// What this run added, when it extended the previous run's history.
    pub extended: Option<events_table::NewRows>,
}

/// Stage 1: reads the sources into the `events` view: for a run, only the files the previous
/// run's ingestion log does not hold, added to its history (or every file, when the history
/// cannot be extended: the record says why). Files it cannot read fail the run or, with
/// `--skip-bad-files`, go into the record.
pub async fn run(ctx: &mut RunCtx<'_>) -> EngineResult<EventsOut> {
    let bad = if ctx.opts.skip_bad_files {
        sources::BadFiles::Skip
    } else {
        sources::BadFiles::Fail
    };
    let scratch = ctx.scratch.clone();
    let as_of_micros = ctx.as_of.timestamp_micros();
    if ctx.sink.recording() {
        // A script recomputes everything from the sources, as its engine will.
        let read = read_into(
            &ctx.session,
            &mut ctx.sink,
            ctx.space,
            ctx.as_of,
            ctx.opts.window_days,
            Some(scratch.path()),
            bad,
            None,
        )
        .await?
        .expect("a read without a log cannot find it broken");
        ctx.rec.skipped_files = read.skipped;
        let classified = read.classified.expect("a full read has rows");
        register_valid(ctx, &classified, as_of_micros).await?;
        event_counts(&ctx.session, Some(&classified), as_of_micros, 0, ctx.rec).await?;
        return Ok(EventsOut {
            classified: Some(classified),
            classified_as_read: read.classified_as_read,
            previous_errors: None,
            log: None,
            extended: None,
        });
    }
    let mut previous = match history::previous(ctx).await? {
        Ok(p) => Some(p),
        Err(why) => {
            ctx.rec.ingest.reason = Some(why);
            None
        }
    };
    let read = loop {
        let known = previous.as_ref().map(|p| &p.log);
        let read = read_into(
            &ctx.session,
            &mut ctx.sink,
            ctx.space,
            ctx.as_of,
            ctx.opts.window_days,
            Some(scratch.path()),
            bad,
            known,
        )
        .await?;
        match read {
            Ok(read) => break read,
            Err(why) => {
                // A file the history was read from changed or is gone: start over from the
                // sources, and so does the identity graph.
                ctx.history_break = Some(why.clone());
                ctx.rec.ingest.reason = Some(why);
                previous = None;
            }
        }
    };
    ctx.rec.skipped_files = read.skipped;
    ctx.rec.ingest.mode = if previous.is_some() {
        "incremental"
    } else {
        "full"
    }
    .into();
    ctx.rec.ingest.new_files = read.new_files.len() as i64;
    ctx.rec.ingest.known_files = read.known as i64;
    let prev_events = match &previous {
        Some(p) => p.events_up_to(&ctx.session, as_of_micros).await?,
        None => 0,
    };
    let log = previous
        .as_ref()
        .map(|p| &p.log)
        .cloned()
        .unwrap_or_default()
        .with_new(&read.new_files.iter().collect::<Vec<_>>(), &ctx.rec.run_id);
    let new_rows = read
        .classified
        .as_ref()
        .map(|c| hp::good_rows(c.clone()))
        .transpose()?;
    let extended = previous.as_ref().map(|_| events_table::NewRows {
        rows: new_rows.clone(),
    });
    let (prev_history, previous_errors) = match previous {
        Some(p) => (Some(p.history), p.errors),
        None => (None, None),
    };
    let dir = scratch.path().join(stage::HISTORY);
    let history = match (prev_history, new_rows) {
        // A new history is written once to scratch: every later stage reads it.
        (None, Some(new)) => materialize(&ctx.session, hp::extend(None, new)?, &dir).await?,
        // An extended one stays where it is published (later stages read a few days of it or
        // one column, which the table's files answer without reading the rest); only the
        // rows this run adds or replaces are written.
        (Some(prev), Some(new)) => {
            let replaced = hp::replaced_ids(prev.clone(), new.clone())?;
            let df = datafusion::prelude::DataFrame::new(ctx.session.state(), replaced);
            let (replaced, n) = crate::identity::components::materialize(df).await?;
            let replaced = match n {
                0 => None,
                _ => Some(ctx.session.read_table(replaced)?.into_unoptimized_plan()),
            };
            let firsts = hp::new_firsts(prev.clone(), replaced.clone(), new)?;
            let firsts = materialize(&ctx.session, firsts, &dir).await?;
            let added = hp::typed_history(firsts)?;
            if replaced.is_none() {
                let view = ctx.session.execute_logical_plan(added.clone()).await?;
                ctx.session
                    .register_table(stage::HISTORY_ADDED, view.into_view())?;
            }
            hp::with_firsts(prev, replaced, added)?
        }
        (Some(prev), None) => prev,
        (None, None) => {
            return Err(EngineError::Definition(
                "the space has no source tables".into(),
            ));
        }
    };
    ctx.session.register_table(
        stage::HISTORY,
        ctx.session.execute_logical_plan(history).await?.into_view(),
    )?;
    let history = ctx
        .session
        .table(stage::HISTORY)
        .await?
        .into_unoptimized_plan();
    let events = hp::events_up_to(history, as_of_micros)?;
    register_events_view(&ctx.session, &mut ctx.sink, ctx.space, events).await?;
    event_counts(
        &ctx.session,
        read.classified.as_ref(),
        as_of_micros,
        prev_events,
        ctx.rec,
    )
    .await?;
    let classified = match (read.classified, &extended) {
        (Some(c), None) => Some(errors_only(&ctx.session, c, scratch.path()).await?),
        (c, _) => c,
    };
    Ok(EventsOut {
        classified,
        classified_as_read: None,
        previous_errors,
        log: Some(log),
        extended,
    })
}

/// The rows of `classified` (the scratch copy of the sources' rows) that were set aside,
/// kept in their own scratch folder; the copy itself is deleted. The good rows are in the
/// history by now, and at 100 M events the copy is some 9 GB of disk the later stages need.
/// Only for a run that does not extend a previous history: one that does publishes its new
/// rows from the copy.
async fn errors_only(
    ctx: &SessionContext,
    classified: LogicalPlan,
    scratch: &std::path::Path,
) -> EngineResult<LogicalPlan> {
    let errors = LogicalPlanBuilder::from(classified)
        .filter(col("error_reason").is_not_null())?
        .build()?;
    let errors = materialize(ctx, errors, &scratch.join(stage::CLASSIFIED_ERRORS)).await?;
    if let Err(e) = std::fs::remove_dir_all(scratch.join(stage::CLASSIFIED)) {
        tracing::debug!("the scratch copy of the sources stays until the run ends: {e}");
    }
    Ok(errors)
}

/// Registers the good, deduplicated events up to as-of of `classified` as `events` (and
/// records their plan, as read from the sources, for a script).
async fn register_valid(
    ctx: &mut RunCtx<'_>,
    classified: &LogicalPlan,
    as_of_micros: i64,
) -> EngineResult<()> {
    let valid = hp::valid_events(classified.clone(), as_of_micros)?;
    register_events_view(&ctx.session, &mut ctx.sink, ctx.space, valid).await
}

/// Registers `events` (recording the plan of the events as read, for a script) and one
/// view per source name.
async fn register_events_view(
    ctx: &SessionContext,
    sink: &mut StageSink,
    space: &Space,
    events: LogicalPlan,
) -> EngineResult<()> {
    ctx.register_table(
        stage::EVENTS,
        ctx.execute_logical_plan(events).await?.into_view(),
    )?;
    register_source_views(ctx, sink, space).await
}

/// Registers one view per source name over the session's `events` (its rows of that source).
pub async fn register_source_views(
    ctx: &SessionContext,
    sink: &mut StageSink,
    space: &Space,
) -> EngineResult<()> {
    for s in &space.sources {
        let per_source =
            LogicalPlanBuilder::from(ctx.table(stage::EVENTS).await?.into_unoptimized_plan())
                .filter(col("source").eq(lit(s.name.as_str())))?
                .build()?;
        sink.view(ctx, &s.name, per_source).await?;
    }
    Ok(())
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
    let read = read_into(ctx, sink, space, as_of, window_days, scratch, bad, None)
        .await?
        .expect("a read without a log cannot find it broken");
    let classified = read.classified.expect("a full read has rows");
    let valid = hp::valid_events(classified.clone(), as_of.timestamp_micros())?;
    register_events_view(ctx, sink, space, valid).await?;
    Ok((classified, read.skipped))
}

struct Read {
    /// None when every file in scope is in the log.
    classified: Option<LogicalPlan>,
    classified_as_read: Option<LogicalPlan>,
    skipped: Vec<files::SkippedFile>,
    /// Files read (not set aside), for the ingestion log.
    new_files: Vec<files::SourceFile>,
    /// Files not read because the log holds them.
    known: usize,
}

/// Reads the sources' files in scope (those `known` does not hold) into classified rows:
/// `Ok(Err(why))` when a file `known` holds changed or is gone.
///
/// Footers that cannot be read are found when the files are opened. Pages that cannot be
/// decoded are found only while reading: when writing the classified rows to `scratch`
/// fails, each file is read alone to find the culprits, which then fail the run by name or,
/// with [`sources::BadFiles::Skip`], are set aside and the stage starts over without them.
#[allow(clippy::too_many_arguments)]
async fn read_into(
    ctx: &SessionContext,
    sink: &mut StageSink,
    space: &Space,
    as_of: DateTime<Utc>,
    window_days: Option<u32>,
    scratch: Option<&Path>,
    bad: sources::BadFiles,
    known: Option<&IngestLog>,
) -> EngineResult<Result<Read, String>> {
    let scope = sources::Scope {
        from: window_days.map(|d| as_of - chrono::Duration::days(i64::from(d))),
        to: as_of,
    };
    // A script reads each source as one table of its engine: one scan per source table.
    let one_scan = sink.recording();
    let mut exclude: Vec<files::SkippedFile> = Vec::new();
    loop {
        let mut tables = Vec::new();
        let mut read_files = Vec::new();
        let mut listed = Vec::new();
        let mut skipped = exclude.clone();
        let mut known_files = 0;
        for s in &space.sources {
            let r =
                sources::source_tables(ctx, &space.root, s, scope, bad, &exclude, one_scan, known)
                    .await?;
            tables.extend(r.tables);
            read_files.extend(r.files);
            listed.extend(r.listed);
            skipped.extend(r.skipped);
            known_files += r.known;
        }
        if let Some(why) = known.and_then(|k| k.broken(&listed)) {
            return Ok(Err(why));
        }
        let new_files = || read_files.iter().map(|(_, f)| f.clone()).collect();
        let Some(normalized) = ev::union_tables(&tables)? else {
            if known_files > 0 {
                return Ok(Ok(Read {
                    classified: None,
                    classified_as_read: None,
                    skipped,
                    new_files: Vec::new(),
                    known: known_files,
                }));
            }
            return Err(EngineError::Definition(
                "the space has no source tables".into(),
            ));
        };
        let classified = ev::classify(normalized)?;
        let Some(dir) = scratch else {
            return Ok(Ok(Read {
                classified: Some(classified.clone()),
                classified_as_read: Some(classified),
                skipped,
                new_files: new_files(),
                known: known_files,
            }));
        };
        let dir = dir.join(stage::CLASSIFIED);
        match materialize(ctx, classified.clone(), &dir).await {
            Ok(plan) => {
                if sink.recording() {
                    let as_read = hp::valid_events(classified.clone(), as_of.timestamp_micros())?;
                    sink.table(stage::EVENTS, &as_read);
                }
                return Ok(Ok(Read {
                    classified: Some(plan),
                    classified_as_read: Some(classified),
                    skipped,
                    new_files: new_files(),
                    known: known_files,
                }));
            }
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
    }
}

/// Counts rows per source/type/reason, duplicates and rows after as_of, into the record.
/// `previous_events` is how many events up to as-of the history this run extends held: what
/// the new rows are deduplicated against.
async fn event_counts(
    ctx: &SessionContext,
    classified: Option<&LogicalPlan>,
    as_of_micros: i64,
    previous_events: i64,
    rec: &mut RunRecord,
) -> EngineResult<()> {
    let as_of = lit(datafusion::common::ScalarValue::TimestampMicrosecond(
        Some(as_of_micros),
        Some(Arc::from("UTC")),
    ));
    let after = col("timestamp").gt(as_of);
    let mut good_rows = previous_events;
    if let Some(classified) = classified {
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
