//! A run: one DataFusion session, one as-of time, the stages in order, then one publish.
//!
//! Stages: `events` (read every source, normalize, classify bad rows, deduplicate by message
//! id), `identity`, `traits` (profiles, accounts, custom, computed and SQL traits) and
//! `audiences` (memberships and changes). The run then writes every table under
//! `<output>/<space>/` and flips the manifest (see [`crate::store::manifest`]), so readers see
//! the whole run or the previous one.

pub mod abandoned;
pub mod audiences;
pub mod capture;
mod events_stage;
pub mod files;
pub mod identity;
pub mod profiles;
mod publish;
pub mod record;
pub mod retention;
mod runs_table;
pub mod scratch;
pub mod session;
pub mod sources;
pub mod sql_traits;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use crate::error::{EngineError, EngineResult};
use crate::spec::Space;
use crate::store::{delta, lease, manifest, objects};
use record::RunRecord;
use runs_table::{definitions_history, record_failure};

use events_stage::event_counts;
pub(crate) use events_stage::{keep, materialize};
pub use events_stage::{read_events, register_events};
use publish::{event_errors_plan, publish, recent_events_plan};

/// Names of the tables a run publishes, in publish order.
pub const PUBLISHED_TABLES: [&str; 12] = [
    "event_errors",
    "identities",
    "identity_violations",
    "identity_graph",
    "profile_merges",
    "profiles",
    "accounts",
    "account_links",
    "audience_membership",
    "audience_changes",
    "recent_events",
    "runs",
];

/// Published tables that are a stage's session table as it stands: (published, session).
const PUBLISHED_FROM_STAGES: [(&str, &str); 5] = [
    ("profiles", "cohort_profiles"),
    ("accounts", "cohort_accounts"),
    ("account_links", "account_links"),
    ("audience_membership", "cohort_audience_membership"),
    ("audience_changes", "cohort_audience_changes"),
];

/// How many days of each profile's events `recent_events` keeps (what the Profile API's
/// `events` endpoint returns).
pub const RECENT_EVENT_DAYS: i64 = 14;

/// How to run a space.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The time every window is measured from; default: the run's start.
    pub as_of: Option<DateTime<Utc>>,
    /// Read only the last N days before as_of (older partitions are not opened).
    pub window_days: Option<u32>,
    pub session: session::SessionOptions,
    /// How long to wait for another run of the space to finish.
    pub lease_wait: Duration,
    /// Rebuild the identity graph from scratch even when an incremental run is possible.
    pub full_rebuild: bool,
    /// What started the run, for the run record (`manual: cli`, `schedule: ...`).
    pub trigger: Option<String>,
    /// Set unreadable source files aside (listed in the run record and `event_errors`)
    /// instead of failing the run.
    pub skip_bad_files: bool,
    /// How long the stages before publishing may take; beyond it the run stops and fails
    /// (the last good run stays published).
    pub timeout: Option<Duration>,
    /// Notified to stop the run before it publishes (the CLI's Ctrl-C): it fails and records
    /// why, and the last good run stays published.
    pub interrupt: Option<Arc<tokio::sync::Notify>>,
}

/// Something that wants to hear how a run is going (the CLI's progress display).
pub trait Progress: Send + Sync {
    fn stage_started(&self, _stage: &str) {}
    fn stage_finished(&self, _stage: &str, _elapsed: Duration) {}
}

/// Records a finished stage's time in the run record and tells `progress`.
fn stage_done(rec: &mut RunRecord, progress: &dyn Progress, stage: &str, started: Instant) {
    let elapsed = started.elapsed();
    rec.stage_timings
        .push((stage.to_string(), elapsed.as_millis() as u64));
    progress.stage_finished(stage, elapsed);
}

/// A progress sink that says nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub record: RunRecord,
    /// `<output>/<space>` URL.
    pub output: String,
    pub manifest: manifest::Manifest,
    /// What the space's retention removed after publishing, when it was due.
    pub vacuum: Option<crate::store::retention::VacuumReport>,
}

/// Where a space's tables live: `<output>/<space name>`.
pub fn output_location(space: &Space) -> EngineResult<objects::Location> {
    Ok(objects::open_raw(&space.root, &space.output)?.child(&space.name))
}

fn new_run_id(started: DateTime<Utc>) -> String {
    format!(
        "{}-{:05}",
        started
            .format("%Y%m%dT%H%M%S%.3fZ")
            .to_string()
            .replace('.', ""),
        std::process::id() % 100_000
    )
}

/// A record for a run of `space` starting now, with nothing done yet.
pub fn new_record(
    space: &Space,
    opts: &RunOptions,
    run_id: &str,
    started_at: DateTime<Utc>,
) -> RunRecord {
    let (definitions_hash, definitions) = record::definitions_fingerprint(&space.root);
    RunRecord {
        run_id: run_id.to_string(),
        space: space.name.clone(),
        status: "running".into(),
        as_of: opts.as_of.unwrap_or(started_at),
        started_at,
        finished_at: started_at,
        window_days: opts.window_days.map(i64::from),
        definitions_hash,
        definitions,
        trigger: opts.trigger.clone(),
        ..RunRecord::default()
    }
}

/// Runs every stage of `space` and publishes the result atomically.
pub async fn run(
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> EngineResult<RunReport> {
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    let out = output_location(space)?;
    let lease = lease::acquire(&out, &run_id, opts.lease_wait).await?;
    let mut rec = new_record(space, opts, &run_id, started_at);
    // Runs that died without recording how: their rows go into `runs` with this run's.
    let dead = match abandoned::left_behind(&out, &run_id, &run_id).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("cannot read the markers of earlier runs: {e}");
            Vec::new()
        }
    };
    // The run holds its scratch folder until it has recorded how it ended: a failed query's
    // writer tasks are stopping meanwhile, and none writes into the folder after it goes.
    let mut scratch = None;
    let result = match abandoned::mark(&out, &rec).await {
        Ok(()) => match new_scratch(opts) {
            Ok(s) => {
                let r = run_stages(space, opts, progress, &out, &mut rec, &dead, &s).await;
                scratch = Some(s);
                r
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let recorded: Vec<String> = dead
        .iter()
        .map(|d| d.run_id.clone())
        .chain([run_id.clone()])
        .collect();
    let outcome = match result {
        Ok(m) => {
            abandoned::clear(&out, &recorded).await;
            let vacuum = retention::after_publish(space, &out).await;
            Ok(RunReport {
                record: rec.clone(),
                output: out.url.to_string(),
                manifest: m,
                vacuum,
            })
        }
        Err(e) => {
            rec.status = "failed".into();
            rec.finished_at = Utc::now();
            rec.message = Some(e.to_string());
            match record_failure(&out, &dead, &rec).await {
                Ok(()) => abandoned::clear(&out, &recorded).await,
                Err(e2) => {
                    tracing::warn!("could not record the failed run: {e2}");
                    abandoned::note_failure(&out, &rec).await;
                }
            }
            Err(e)
        }
    };
    drop(scratch);
    lease.release().await?;
    outcome
}

/// A space evaluated up to its profiles and traits (stages 1 to 4), nothing published: the
/// session holds `events`, `profile_events`, `cohort_profiles`, `cohort_accounts` and the
/// identity tables.
pub struct Evaluation {
    pub ctx: SessionContext,
    /// Scratch files of the session's materialized tables and its spill files; removed when
    /// dropped.
    pub scratch: scratch::Scratch,
    pub previous: Option<manifest::Manifest>,
    /// This run's merges: (merged-away profile, surviving profile).
    pub merges: Vec<(String, String)>,
    pub scope_from: Option<DateTime<Utc>>,
    /// Every source row, classified (for `event_errors`).
    pub classified: LogicalPlan,
}

/// Runs stages 1 to 4 of `space` into `rec` (timings, counts) without publishing anything.
pub async fn evaluate(
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
) -> EngineResult<Evaluation> {
    evaluate_with(new_scratch(opts)?, space, opts, progress, out, rec).await
}

/// [`evaluate`] with its scratch folder made by the caller (the folder goes when the last
/// clone of `scratch` is dropped).
async fn evaluate_with(
    scratch: scratch::Scratch,
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
) -> EngineResult<Evaluation> {
    let session_opts = session::SessionOptions {
        spill_dir: Some(scratch.spill_dir()),
        ..opts.session.clone()
    };
    let ctx = session::new_session(&session_opts)?;
    evaluate_in(ctx, scratch, space, opts, progress, out, rec).await
}

/// Scratch files of a run (materialized stage outputs, spill files); removed when the run
/// ends. Making it first clears the scratch folders of runs that died.
fn new_scratch(opts: &RunOptions) -> EngineResult<scratch::Scratch> {
    let parent = scratch::parent(opts.session.spill_dir.as_deref());
    scratch::create(&parent).map_err(|e| {
        EngineError::Invalid(format!(
            "cannot create a scratch folder in {}: {e}",
            parent.display()
        ))
    })
}

/// [`evaluate`] in a given session (a recording one keeps no scratch copies).
async fn evaluate_in(
    ctx: SessionContext,
    scratch: scratch::Scratch,
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
) -> EngineResult<Evaluation> {
    let as_of_micros = rec.as_of.timestamp_micros();

    // Stage 1: events.
    let t = Instant::now();
    progress.stage_started("events");
    let scratch_dir = (!capture::recording(&ctx)).then(|| scratch.path());
    let bad = if opts.skip_bad_files {
        sources::BadFiles::Skip
    } else {
        sources::BadFiles::Fail
    };
    let (classified, skipped) =
        read_events(&ctx, space, rec.as_of, opts.window_days, scratch_dir, bad).await?;
    rec.skipped_files = skipped;
    event_counts(&ctx, &classified, as_of_micros, rec).await?;
    stage_done(rec, progress, "events", t);

    // Stage 2: identity.
    let t = Instant::now();
    progress.stage_started("identity");
    let previous = manifest::read(out).await?;
    let scope_from = opts
        .window_days
        .map(|d| rec.as_of - chrono::Duration::days(i64::from(d)));
    let (stats, merges) = identity::run_identity(
        &ctx,
        space,
        out,
        previous.as_ref(),
        scope_from,
        opts.full_rebuild,
        scratch_dir,
    )
    .await?;
    rec.identity = Some(stats);
    stage_done(rec, progress, "identity", t);

    // Stages 3 and 4: profiles and traits.
    let t = Instant::now();
    progress.stage_started("traits");
    let rules = crate::plan::identity::ResolvedRules::from_spec(&space.identity);
    let sql = sql_traits::run_sql_traits(&ctx, space).await?;
    let profile_stats =
        profiles::run_profiles(&ctx, space, &rules, as_of_micros, &sql, scratch_dir).await?;
    rec.profiles = Some(profile_stats);
    stage_done(rec, progress, "traits", t);

    Ok(Evaluation {
        ctx,
        scratch,
        previous,
        merges,
        scope_from,
        classified,
    })
}

async fn run_stages(
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
    dead: &[RunRecord],
    scratch: &scratch::Scratch,
) -> EngineResult<manifest::Manifest> {
    // The stages before publishing, under the run's timeout; on timeout their futures (and the
    // DataFusion streams in them) are dropped. Publishing is never cut off half way.
    let computed = compute(space, opts, progress, out, rec, scratch);
    let limited = async {
        match opts.timeout {
            None => computed.await,
            Some(limit) => tokio::time::timeout(limit, computed).await.map_err(|_| {
                EngineError::Invalid(format!(
                    "the run exceeded its {} timeout (--timeout) and was stopped before \
                     publishing; the last good run stays published",
                    crate::spec::format_duration(limit)
                ))
            })?,
        }
    };
    let ev = match &opts.interrupt {
        None => limited.await?,
        Some(stop) => tokio::select! {
            ev = limited => ev?,
            () = stop.notified() => {
                return Err(EngineError::Invalid(
                    "the run was interrupted (Ctrl-C) before publishing; the last good run \
                     stays published"
                        .into(),
                ));
            }
        },
    };
    publish(space, progress, out, rec, dead, ev).await
}

/// Stages 1 to 6: everything a run computes before it publishes.
async fn compute(
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
    scratch: &scratch::Scratch,
) -> EngineResult<Evaluation> {
    let ev = evaluate_with(scratch.clone(), space, opts, progress, out, rec).await?;
    let rules = crate::plan::identity::ResolvedRules::from_spec(&space.identity);
    let Evaluation {
        ctx,
        scratch,
        previous,
        merges,
        ..
    } = &ev;

    // Stages 5 and 6: audiences and changes.
    let t = Instant::now();
    progress.stage_started("audiences");
    audiences::check_deleted_keys(space, &definitions_history(out, previous.as_ref()).await?)?;
    let audience_stats = audiences::run_audiences(
        ctx,
        space,
        &rules,
        rec.profiles.as_ref(),
        out,
        previous.as_ref(),
        merges,
        &rec.run_id,
        rec.as_of,
        Some(scratch.path()),
    )
    .await?;
    rec.audiences = Some(audience_stats);
    stage_done(rec, progress, "audiences", t);
    Ok(ev)
}

/// A first run of `space` as of `as_of` in the recording session `ctx`: every stage up to the
/// audiences, nothing written; the published tables are recorded last, by their names.
pub(crate) async fn capture_run(
    ctx: SessionContext,
    space: &Space,
    as_of: DateTime<Utc>,
) -> EngineResult<()> {
    use crate::script::script::Step;
    let opts = RunOptions {
        as_of: Some(as_of),
        full_rebuild: true,
        ..Default::default()
    };
    let out = output_location(space)?;
    let mut rec = new_record(space, &opts, "script", Utc::now());
    let ev = evaluate_in(
        ctx,
        new_scratch(&opts)?,
        space,
        &opts,
        &Quiet,
        &out,
        &mut rec,
    )
    .await?;
    let ctx = &ev.ctx;
    let rules = crate::plan::identity::ResolvedRules::from_spec(&space.identity);
    audiences::run_audiences(
        ctx,
        space,
        &rules,
        rec.profiles.as_ref(),
        &out,
        None,
        &ev.merges,
        &rec.run_id,
        rec.as_of,
        None,
    )
    .await?;
    for (table, source) in identity::IDENTITY_TABLES
        .into_iter()
        .chain(PUBLISHED_FROM_STAGES)
    {
        capture::step(
            ctx,
            Step::Published {
                name: table.to_string(),
                from: source.to_string(),
            },
        );
    }
    let recent = recent_events_plan(ctx, rec.as_of).await?;
    capture::table(ctx, "recent_events", &recent);
    let errors = event_errors_plan(ev.classified.clone(), &rec.run_id, &rec.skipped_files)?;
    capture::table(ctx, "event_errors", &errors);
    Ok(())
}

/// Registers every table of the space's last good run by name, at its published version,
/// unless the session already has a table of that name (a run's own tables win).
pub async fn register_published(ctx: &SessionContext, space: &Space) -> EngineResult<()> {
    let out = output_location(space)?;
    let Some(m) = manifest::read(&out).await? else {
        return Ok(());
    };
    for (table, v) in &m.tables {
        if ctx.table_exist(table.as_str())? {
            continue;
        }
        ctx.register_table(
            table.as_str(),
            delta::provider(&out.child(table), *v).await?,
        )?;
    }
    Ok(())
}
