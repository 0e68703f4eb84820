//! What every stage of a run receives: [`RunCtx`], the run's session, space, as-of time,
//! output location, previous published run, run record, options, progress display, scratch
//! folder and [`StageSink`]; and the options a run is started with.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;

use super::record::RunRecord;
use super::scratch::Scratch;
use super::session;
use super::sink::StageSink;
use crate::error::{EngineError, EngineResult};
use crate::spec::Space;
use crate::store::{manifest, objects};

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
    /// Read every source file again and rebuild the identity graph, even when the previous
    /// run's event history and graph could be extended.
    pub full_rebuild: bool,
    /// What started the run, for the run record (`manual: cli`, `schedule: ...`).
    pub trigger: Option<String>,
    /// Evaluate only these definitions (`trait:<key>`, `sql_trait:<key>`, `audience:<key>`)
    /// and what they read; the others keep their values (see [`super::due`]). None: all.
    pub select: Option<std::collections::BTreeSet<String>>,
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

/// A progress sink that says nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// One run in progress: what its stages read and where they leave their tables.
pub struct RunCtx<'a> {
    /// The run's DataFusion session: stages hand each other tables registered in it, by the
    /// names in [`super::tables`].
    pub session: SessionContext,
    pub space: &'a Space,
    pub opts: &'a RunOptions,
    /// The time every window is measured from.
    pub as_of: DateTime<Utc>,
    /// `<output>/<space>`.
    pub out: objects::Location,
    /// The last good run's manifest (None for a first run), read once when the run starts.
    pub previous: Option<manifest::Manifest>,
    /// Set by the events stage when what the previous run read no longer holds (a source file
    /// changed or is gone, the sources changed, as-of moved back): why the identity stage
    /// must not start from the previous graph either.
    pub history_break: Option<String>,
    /// The run's record: stage timings and what each stage counted.
    pub rec: &'a mut RunRecord,
    pub progress: &'a dyn Progress,
    /// Scratch files of the session's materialized tables and its spill files.
    pub scratch: Scratch,
    pub sink: StageSink,
    /// Whether this run may keep the published values of profiles nothing touched (a run
    /// that publishes; not a preview or a script).
    pub keep_unchanged: bool,
    /// Set before the traits stage when it keeps the untouched profiles' values (see
    /// [`super::touched`]).
    pub reuse: Option<super::touched::Reuse>,
    /// How the traits and audiences were evaluated, for the run record.
    pub recompute: super::touched::Recompute,
    /// Definitions this run keeps without evaluating them (see [`super::due`]).
    pub kept: crate::store::manifest::Kept,
    /// SQL traits this run does not evaluate because nothing they read changed; their values
    /// are the previous run's for every profile (see [`super::sql_unchanged`]).
    pub unchanged_sql_traits: std::collections::BTreeSet<String>,
    /// In how many buckets the joins of every event with its profile run (1: whole), set
    /// after the events stage from its count and the memory limit (see [`super::bucketed`]).
    pub join_buckets: u32,
    /// In how many parts of days the tables partitioned by day are written (1: whole), set
    /// with `join_buckets` (see [`super::bucketed::write_parts`]).
    pub write_parts: u32,
    /// The rows of the published `events` table (and their parts of days) when the traits
    /// stage wrote them to scratch on its way to `profile_events` (see
    /// [`super::stages::profile_events::keep_published`]).
    pub published_events: Option<super::events_table::Rows>,
    /// Set by the identity stage exactly when it resolved only where this run's events reach
    /// (see [`super::stages::identity_affected`]): when the changed events start, whether any
    /// replaced an event and whether they reached previous components. Publishing then
    /// writes `events` and `identity_occurrences` as what changed.
    pub changed: Option<super::stages::identity_affected::Changed>,
    /// SQL traits evaluated for the identifiers of the changed events only, with how many
    /// identifiers (see [`super::sql_keyed`]).
    pub keyed_sql_traits: std::collections::BTreeMap<String, u64>,
    /// Every evaluated SQL trait's rows before the merge into profiles, by key: published
    /// for the next run to start from (see [`super::sql_keyed`]).
    pub sql_trait_rows: Vec<(String, datafusion::arrow::array::RecordBatch)>,
}

/// What a run over published state starts from: the last good run's manifest at `out`, and
/// `space` with when each of its definitions first appeared in the runs (`backfill: false`).
pub async fn starting_point(
    space: &Space,
    out: &objects::Location,
    as_of: DateTime<Utc>,
) -> EngineResult<(Option<manifest::Manifest>, Space)> {
    let previous = manifest::read(out).await?;
    let space = super::backfill::resolve(space, previous.as_ref(), as_of);
    Ok((previous, space))
}

impl<'a> RunCtx<'a> {
    /// A context with a new session that spills into `scratch`; `previous` is the last good
    /// run's manifest.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        space: &'a Space,
        previous: Option<manifest::Manifest>,
        opts: &'a RunOptions,
        progress: &'a dyn Progress,
        out: objects::Location,
        rec: &'a mut RunRecord,
        scratch: Scratch,
        sink: StageSink,
    ) -> EngineResult<Self> {
        let session_opts = session::SessionOptions {
            spill_dir: Some(scratch.spill_dir()),
            ..opts.session.clone()
        };
        Ok(RunCtx {
            session: session::new_session(&session_opts)?,
            space,
            opts,
            as_of: rec.as_of,
            out,
            previous,
            history_break: None,
            rec,
            progress,
            scratch,
            sink,
            keep_unchanged: false,
            reuse: None,
            recompute: Default::default(),
            kept: Default::default(),
            unchanged_sql_traits: Default::default(),
            join_buckets: 1,
            write_parts: 1,
            published_events: None,
            changed: None,
            keyed_sql_traits: Default::default(),
            sql_trait_rows: Vec::new(),
        })
    }

    /// The scratch folder's path.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// Tells the progress display that `stage` starts; returns when.
    pub fn stage_started(&self, stage: &str) -> Instant {
        self.progress.stage_started(stage);
        // The peaks logged when the stage is done are its own.
        super::memory::take_peaks(&self.session);
        Instant::now()
    }

    /// Records a finished stage's time in the run record and tells the progress display.
    pub fn stage_done(&mut self, stage: &str, started: Instant) {
        let elapsed = started.elapsed();
        let peak = super::memory::take_peaks(&self.session);
        let mb = |b: Option<usize>| b.map(|b| b >> 20);
        tracing::info!(
            target: "cohort::memory",
            stage,
            seconds = elapsed.as_secs_f64(),
            pool_peak_mb = mb(peak.pool),
            resident_peak_mb = mb(peak.resident),
            "stage done"
        );
        self.rec
            .stage_timings
            .push((stage.to_string(), elapsed.as_millis() as u64));
        self.progress.stage_finished(stage, elapsed);
    }
}

/// Scratch files of a run (materialized stage outputs, spill files); removed when the run
/// ends. Making it first clears the scratch folders of runs that died.
pub fn new_scratch(opts: &RunOptions) -> EngineResult<Scratch> {
    let parent = super::scratch::parent(opts.session.spill_dir.as_deref());
    super::scratch::create(&parent).map_err(|cause| EngineError::Io {
        what: format!("cannot create a scratch folder in {}", parent.display()),
        cause,
    })
}
