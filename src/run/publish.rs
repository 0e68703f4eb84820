//! Publishing a run: every table written as a new Delta version, then the manifest flipped
//! in one PUT, so that readers see the whole run or the previous one (see
//! [`crate::store::manifest`]). Also the plans of the tables only publishing makes
//! (`recent_events`, `event_errors`), and their record for a script ([`record`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::common::JoinType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionContext, col, lit};

use super::ctx::RunCtx;
use super::record::{RunRecord, RunStatus};
use super::runs_table::write_runs;
use super::stages::events::EventsOut;
use super::stages::identity::{self, IdentityOut};
use super::tables::{IDENTITY_TABLES, copied_tables, published, stage};
use super::{RECENT_EVENT_DAYS, files};
use crate::error::EngineResult;
use crate::script::steps::Step;
use crate::store::{delta, manifest};

/// Writes every table, then the manifest in one PUT (with the rows of `dead` runs and this
/// one in `runs`).
pub(super) async fn publish(
    rc: &mut RunCtx<'_>,
    events: EventsOut,
    identity: IdentityOut,
    dead: &[RunRecord],
) -> EngineResult<manifest::Manifest> {
    let t = rc.stage_started("publish");
    let sql_trait_rows = std::mem::take(&mut rc.sql_trait_rows);
    // Set when identity resolved only where this run's events reach.
    let affected = rc.changed;
    let (ctx, out, previous) = (&rc.session, &rc.out, rc.previous.as_ref());
    let rec = &mut *rc.rec;
    let mut plans: Vec<(&str, LogicalPlan)> = Vec::new();
    let mut versions = BTreeMap::new();
    for (table, source) in copied_tables() {
        plans.push((table, ctx.table(source).await?.into_unoptimized_plan()));
    }
    let copied = plans.len();
    // The identity tables of a run whose events are the previous run's, over the previous
    // graph, are the previous run's: their versions are named again.
    let unchanged = rec.identity.as_ref().is_some_and(|i| {
        affected.is_some() && i.changed_events == Some(0) && i.affected_identifiers == Some(0)
    });
    plans.push((
        published::RECENT_EVENTS,
        recent_events_plan(ctx, rec.as_of, rc.reuse.is_some()).await?,
    ));
    let merges = &identity.merges;
    let merges_plan =
        identity::merges_plan(ctx, out, previous, merges, &rec.run_id, rec.as_of).await?;
    plans.push((published::PROFILE_MERGES, merges_plan));
    let errors_plan = event_errors_plan(
        events.classified,
        events.previous_errors,
        &rec.run_id,
        &rec.skipped_files,
    )?;
    plans.push((published::EVENT_ERRORS, errors_plan));
    for (i, (table, plan)) in plans.into_iter().enumerate() {
        let written = std::time::Instant::now();
        let same = match IDENTITY_TABLES.iter().any(|(t, _)| *t == table) && unchanged {
            true => previous.and_then(|m| m.tables.get(table)).copied(),
            false => None,
        };
        let appended = match (same, table == published::AUDIENCE_CHANGES) {
            (None, true) => append_changes(ctx, out, previous).await?,
            _ => same,
        };
        let v = match appended {
            Some(v) => v,
            None => delta::overwrite_from_plan(&out.child(table), plan, &ctx.state()).await?,
        };
        logged(table, written);
        versions.insert(table.to_string(), v);
        // Tests that kill a run mid-publish pause after each copied table and after the rest.
        if i < copied {
            pause().await;
        }
    }
    release_scratch(
        ctx,
        rc.scratch.path(),
        &[stage::PROFILE_EVENTS, stage::AUDIENCE_EVENTS],
    )?;
    // The history and the files it was read from, for the next run to extend.
    let layout = super::bucketed::Layout {
        scratch: rc.scratch.path(),
        join_buckets: rc.join_buckets,
        write_parts: rc.write_parts,
    };
    let rows = (events.extended, rc.published_events.take());
    let written = std::time::Instant::now();
    let v = super::events_table::write(ctx, out, previous, rows, layout, affected).await?;
    logged(published::EVENTS, written);
    versions.insert(published::EVENTS.to_string(), v);
    // Nothing reads the events again: the session's `events` and `event_history` go, with
    // the history's scratch copy and the published rows' (`events/` in scratch, when the
    // join was written there), some 18 GB at 100 M events that `identity_occurrences` needs.
    let history = [stage::EVENTS, stage::HISTORY, stage::HISTORY_ADDED];
    release_scratch(ctx, rc.scratch.path(), &history)?;
    let written = std::time::Instant::now();
    let v = super::occurrences_table::write(ctx, out, previous, affected, layout).await?;
    let table = published::IDENTITY_OCCURRENCES;
    logged(table, written);
    versions.insert(table.to_string(), v);
    if let Some(log) = events.log {
        let v = delta::overwrite_batches(&out.child(published::INGESTED_FILES), vec![log]).await?;
        versions.insert(published::INGESTED_FILES.to_string(), v);
    }
    let repairs = &identity.repairs;
    let run = super::repairs_table::RunIdentities::resolved(ctx).await?;
    if let Some(v) = super::repairs_table::write(run, out, previous, repairs, &rec.run_id).await? {
        versions.insert(published::IDENTITY_REPAIRS.to_string(), v);
    }
    if let Some(p) = rec.profiles.as_mut() {
        let written = std::time::Instant::now();
        super::sql_keyed::publish_rows(ctx, out, sql_trait_rows, &mut p.sql_states).await?;
        logged("sql_trait_rows", written);
    }
    pause().await;

    rec.status = RunStatus::Succeeded;
    rec.finished_at = Utc::now();
    let publish_ms = t.elapsed().as_millis() as u64;
    rec.stage_timings.push(("publish".into(), publish_ms));
    let v = write_runs(out, previous, dead, rec).await?;
    versions.insert(published::RUNS.to_string(), v);
    pause().await;

    let m = manifest::Manifest {
        format: manifest::MANIFEST_FORMAT,
        space: rc.space.name.clone(),
        run_id: rec.run_id.clone(),
        as_of: rec.as_of.to_rfc3339(),
        published_at: Utc::now().to_rfc3339(),
        tables: versions,
        identity_rules: Some(identity::rules_fingerprint(rc.space)),
        scope_from: identity.scope_from.map(|t| t.to_rfc3339()),
        sources: Some(super::history::sources_fingerprint(rc.space)),
        definitions: Some(rec.definitions.clone()),
        custom_trait_kinds: rec.profiles.as_ref().map(|p| p.custom_kinds.clone()),
        kept: Some(rc.kept.clone()).filter(|k| !k.is_empty()),
        sql_traits: rec.profiles.as_ref().map(|p| p.sql_states.clone()),
        first_seen: Some(super::backfill::first_seen(rc.space)),
    };
    manifest::write(out, &m).await?;
    rc.progress.stage_finished("publish", t.elapsed());
    Ok(m)
}

/// `audience_changes` is the previous run's rows with this run's: this run's are appended when
/// the table is still at the version the previous run published (a run that died while
/// publishing may have committed after it; then the whole table is written). Returns the new
/// version, or None when the table is to be written whole.
async fn append_changes(
    ctx: &SessionContext,
    out: &crate::store::objects::Location,
    previous: Option<&manifest::Manifest>,
) -> EngineResult<Option<u64>> {
    let Some(at) = previous.and_then(|m| m.tables.get(published::AUDIENCE_CHANGES)) else {
        return Ok(None);
    };
    let rows = ctx
        .table(stage::AUDIENCE_CHANGES_RUN)
        .await?
        .into_unoptimized_plan();
    let loc = out.child(published::AUDIENCE_CHANGES);
    Ok(delta::append_at(&loc, rows, &ctx.state(), *at).await?)
}

/// Deletes the scratch copies of `tables`, which nothing reads once the tables copied from
/// the session are written: writing `events` and `identity_occurrences` reads the history and
/// the identity tables. At 100 M events `profile_events` and `audience_events` hold some 10 GB
/// of disk that those two writes need. The tables are deregistered first, so that a read of
/// one fails by name instead of finding its files gone.
fn release_scratch(ctx: &SessionContext, scratch: &Path, tables: &[&str]) -> EngineResult<()> {
    for table in tables {
        ctx.deregister_table(*table)?;
        let dir = scratch.join(table);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!("{} stays until the run ends: {e}", dir.display());
        }
    }
    Ok(())
}

/// What a script publishes, recorded into the sink: the tables that are stage tables by their
/// names, then `recent_events` and `event_errors` (as computed from the sources as read).
pub(super) async fn record(rc: &mut RunCtx<'_>, events: EventsOut) -> EngineResult<()> {
    for (table, source) in copied_tables() {
        rc.sink.step(Step::Published {
            name: table.to_string(),
            from: source.to_string(),
        });
    }
    let recent = recent_events_plan(&rc.session, rc.as_of, false).await?;
    rc.sink.table(published::RECENT_EVENTS, &recent);
    let errors = event_errors_plan(
        events.classified_as_read,
        None,
        &rc.rec.run_id,
        &rc.rec.skipped_files,
    )?;
    rc.sink.table(published::EVENT_ERRORS, &errors);
    Ok(())
}

/// The columns of `event_errors`.
pub(super) const EVENT_ERROR_COLUMNS: [&str; 8] = [
    "run_id",
    "source",
    "source_table",
    "message_id",
    "type",
    "reason",
    "detail",
    "timestamp_raw",
];

/// The published `event_errors`: every source row set aside, with its reason (the rows of
/// `previous` first, when this run extends an earlier run's history), and a row per
/// unreadable file set aside (reason `unreadable_file`, the file and why in `detail`).
pub(super) fn event_errors_plan(
    classified: Option<LogicalPlan>,
    previous: Option<LogicalPlan>,
    run_id: &str,
    skipped: &[files::SkippedFile],
) -> EngineResult<LogicalPlan> {
    let mut parts: Vec<LogicalPlan> = previous.into_iter().collect();
    if let Some(classified) = classified {
        parts.push(
            LogicalPlanBuilder::from(classified)
                .filter(col("error_reason").is_not_null())?
                .project(vec![
                    lit(run_id).alias("run_id"),
                    col("source"),
                    col("source_table"),
                    col("message_id"),
                    col("type"),
                    col("error_reason").alias("reason"),
                    col("error_detail").alias("detail"),
                    col("timestamp_raw"),
                ])?
                .build()?,
        );
    }
    if !skipped.is_empty() {
        parts.push(unreadable_files(run_id, skipped)?);
    }
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        // Nothing new and nothing before: an empty table of the same columns.
        let text = || lit(datafusion::common::ScalarValue::Utf8(None));
        return Ok(LogicalPlanBuilder::empty(true)
            .project(EVENT_ERROR_COLUMNS.map(|c| text().alias(c)))?
            .limit(0, Some(0))?
            .build()?);
    };
    let mut b = LogicalPlanBuilder::from(first);
    for p in parts {
        b = b.union(p)?;
    }
    Ok(b.build()?)
}

/// A row per unreadable file set aside.
fn unreadable_files(run_id: &str, skipped: &[files::SkippedFile]) -> EngineResult<LogicalPlan> {
    let text = |s: &str| lit(datafusion::common::ScalarValue::Utf8(Some(s.to_string())));
    let null = || lit(datafusion::common::ScalarValue::Utf8(None));
    let values: Vec<Vec<datafusion::prelude::Expr>> = skipped
        .iter()
        .map(|f| {
            vec![
                text(run_id),
                text(&f.source),
                text(&f.table),
                null(),
                null(),
                text(files::UNREADABLE_FILE),
                text(&format!("{}: {}", f.file, f.reason)),
                null(),
            ]
        })
        .collect();
    Ok(LogicalPlanBuilder::values(values)?
        .project(
            EVENT_ERROR_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, n)| col(format!("column{}", i + 1)).alias(*n)),
        )?
        .build()?)
}

/// Each profile's events of the last [`RECENT_EVENT_DAYS`] days up to as-of, newest first.
pub(super) async fn recent_events_plan(
    ctx: &SessionContext,
    as_of: DateTime<Utc>,
    touched_only: bool,
) -> EngineResult<LogicalPlan> {
    let ts = |t: DateTime<Utc>| {
        lit(datafusion::common::ScalarValue::TimestampMicrosecond(
            Some(t.timestamp_micros()),
            Some(Arc::from("UTC")),
        ))
    };
    let from = as_of - chrono::Duration::days(RECENT_EVENT_DAYS);
    let window = col("timestamp")
        .gt_eq(ts(from))
        .and(col("timestamp").lt_eq(ts(as_of)));
    // `profile_events` holds only the touched profiles' events when the others kept their
    // values: then the window's events with their profiles (the window is the build side).
    let events = match touched_only {
        false => ctx.table(stage::PROFILE_EVENTS).await?.filter(window)?,
        true => {
            let profiles = ctx.table(stage::EVENT_PROFILES).await?.select(vec![
                col("message_id").alias("p_message_id"),
                col("profile_id"),
            ])?;
            let recent = ctx.table(stage::EVENTS).await?.filter(window)?;
            recent.join(
                profiles,
                JoinType::Inner,
                &["message_id"],
                &["p_message_id"],
                None,
            )?
        }
    };
    Ok(LogicalPlanBuilder::from(events.into_unoptimized_plan())
        .project(
            std::iter::once("profile_id")
                .chain(super::tables::EVENT_COLUMNS)
                .map(col)
                .collect::<Vec<_>>(),
        )?
        .sort(vec![
            col("profile_id").sort(true, false),
            col("timestamp").sort(false, false),
            col("message_id").sort(true, false),
        ])?
        .build()?)
}

/// How long publishing `table` took since `from`, in the debug log.
fn logged(table: &str, from: std::time::Instant) {
    tracing::debug!(table, secs = from.elapsed().as_secs_f64(), "published");
}

async fn pause() {
    if let Some(d) = fault_pause() {
        tokio::time::sleep(d).await;
    }
}

/// A pause between publish steps, set only by tests that kill a run mid-publish.
fn fault_pause() -> Option<Duration> {
    std::env::var("COHORT_TEST_PUBLISH_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}
