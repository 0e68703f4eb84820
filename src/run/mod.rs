//! A run: one DataFusion session, one as-of time, the stages in order, then one publish.
//!
//! Every stage takes the run's [`RunCtx`] and returns what the next ones need; the tables it
//! leaves in the session are named in [`tables`]. Where a stage's tables go besides the
//! session is the context's [`sink::StageSink`]: a run writes them to scratch, `cohort compile
//! --script` runs the same stages and also records their plans ([`script`]). Around the
//! stages, [`lifecycle`] holds the lease, the timeout and the run's record of how it ended;
//! [`publish`] writes every table and flips the manifest (see [`crate::store::manifest`]), so
//! readers see the whole run or the previous one.
//!
//! The stages, in order:
//! 1. `events`: read the source files not ingested yet (every file when the previous run's
//!    history cannot be extended, see [`history`] and [`ingest`]), normalize, classify bad
//!    rows, deduplicate by message id into the event history;
//! 2. `identity`: the identity graph, from the previous one when it may;
//! 3. `traits`: SQL traits, then profiles and accounts with their custom and computed traits;
//! 4. `audiences`: memberships and changes;
//! 5. `publish` (a run) or the published tables' record (a script).
//!
//! [`on_spark`] runs the stages on Apache Spark instead (their script, see [`script`]) and
//! publishes what Spark computed ([`publish_staged`]).

pub mod abandoned;
pub mod backfill;
pub mod bucketed;
pub mod ctx;
pub mod due;
pub mod edited;
pub mod events_table;
pub mod files;
pub mod history;
pub mod ingest;
mod lifecycle;
pub mod memory;
mod occurrences_table;
pub mod on_spark;
mod output;
mod publish;
mod publish_staged;
pub mod record;
pub mod repairs_table;
pub mod retention;
mod runs_table;
pub mod scratch;
mod script;
pub mod session;
pub mod sink;
pub mod sources;
pub mod sql_keyed;
pub mod sql_unchanged;
pub mod stages;
pub mod tables;
pub mod touched;

use datafusion::prelude::SessionContext;

use crate::error::EngineResult;
use crate::spec::Space;
use crate::store::objects;
use record::RunRecord;
use stages::events::EventsOut;
use stages::identity::IdentityOut;

pub use ctx::{Progress, Quiet, RunCtx, RunOptions};
pub use lifecycle::{RunReport, new_record, run};
pub use output::{output_location, register_published};
pub use script::script;
pub use sink::keep;
pub use stages::events::{read_events, register_events, register_source_views};
pub use stages::{audiences, identity, profiles, sql_traits};
pub use tables::{HISTORY_TABLES, PUBLISHED_TABLES};

/// How many days of each profile's events `recent_events` keeps (what the Profile API's
/// `events` endpoint returns).
pub const RECENT_EVENT_DAYS: i64 = 14;

/// Stages 1 to 3: events, identity, traits.
async fn evaluate_stages(rc: &mut RunCtx<'_>) -> EngineResult<(EventsOut, IdentityOut)> {
    let t = rc.stage_started("events");
    let events = stages::events::run(rc).await?;
    rc.stage_done("events", t);

    // The run's events bound every build side that has a row per event.
    let events_seen = rc.rec.events.max(0) as u64;
    rc.join_buckets = bucketed::buckets(rc.opts.session.memory_limit, events_seen);
    rc.write_parts = bucketed::write_parts(rc.opts.session.memory_limit, events_seen);

    let t = rc.stage_started("identity");
    let identity = stages::identity::run(rc, &events).await?;
    rc.stage_done("identity", t);

    let t = rc.stage_started("traits");
    due::decide(rc, &events);
    let step = std::time::Instant::now();
    let sql = stages::sql_traits::run(rc).await?;
    tracing::debug!(secs = step.elapsed().as_secs_f64(), "SQL traits evaluated");
    let step = std::time::Instant::now();
    touched::find(rc, &events, &sql).await?;
    tracing::debug!(
        secs = step.elapsed().as_secs_f64(),
        "touched profiles found"
    );
    rc.recompute.kept = rc.kept.clone();
    rc.recompute.unchanged_sql_traits = rc.unchanged_sql_traits.clone();
    rc.recompute.keyed_sql_traits = rc.keyed_sql_traits.clone();
    let mut profiles = stages::profiles::run(rc, &sql).await?;
    profiles.sql_states = due::sql_trait_states(&sql, rc.previous.as_ref());
    rc.rec.profiles = Some(profiles);
    rc.stage_done("traits", t);
    Ok((events, identity))
}

/// Stages 1 to 4: everything a run computes before it publishes.
async fn compute(rc: &mut RunCtx<'_>) -> EngineResult<(EventsOut, IdentityOut)> {
    let (events, identity) = evaluate_stages(rc).await?;

    let t = rc.stage_started("audiences");
    rc.rec.audiences = Some(stages::audiences::run(rc, &identity).await?);
    rc.stage_done("audiences", t);
    Ok((events, identity))
}

/// A space evaluated up to its profiles and traits, nothing published: the session holds
/// `events`, `profile_events`, `cohort_profiles`, `cohort_accounts` and the identity tables.
pub struct Evaluation {
    pub ctx: SessionContext,
    /// Scratch files of the session's materialized tables and its spill files; removed when
    /// dropped.
    pub scratch: scratch::Scratch,
}

/// Runs stages 1 and 2 of `space` (events, identity) into `rec` without publishing anything:
/// the session holds the identity stage's tables (`id_identities`, `id_violations`, ...) for
/// the whole space, as the next run would resolve them.
pub async fn evaluate_identity(
    space: &Space,
    opts: &RunOptions,
    out: &objects::Location,
    rec: &mut RunRecord,
) -> EngineResult<Evaluation> {
    let scratch = ctx::new_scratch(opts)?;
    let (previous, space) = ctx::starting_point(space, out, rec.as_of).await?;
    let mut rc = RunCtx::new(
        &space,
        previous,
        opts,
        &Quiet,
        out.clone(),
        rec,
        scratch,
        sink::StageSink::Materialize,
    )?;
    let events = stages::events::run(&mut rc).await?;
    let events_seen = rc.rec.events.max(0) as u64;
    rc.join_buckets = bucketed::buckets(rc.opts.session.memory_limit, events_seen);
    stages::identity::run(&mut rc, &events).await?;
    Ok(Evaluation {
        ctx: rc.session,
        scratch: rc.scratch,
    })
}

/// Runs stages 1 to 3 of `space` into `rec` (timings, counts) without publishing anything.
pub async fn evaluate(
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
) -> EngineResult<Evaluation> {
    let scratch = ctx::new_scratch(opts)?;
    let sink = sink::StageSink::Materialize;
    let (previous, space) = ctx::starting_point(space, out, rec.as_of).await?;
    let mut rc = RunCtx::new(
        &space,
        previous,
        opts,
        progress,
        out.clone(),
        rec,
        scratch,
        sink,
    )?;
    evaluate_stages(&mut rc).await?;
    Ok(Evaluation {
        ctx: rc.session,
        scratch: rc.scratch,
    })
}
