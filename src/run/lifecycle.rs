//! A run's life around its stages: the space's lease, the markers of runs that died, the
//! scratch folder, the timeout and Ctrl-C, and recording how the run ended (its row in `runs`
//! whether it published or failed).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ctx::{Progress, RunCtx, RunOptions, new_scratch, starting_point};
use super::output::output_location;
use super::record::{self, RunRecord, RunStatus};
use super::runs_table::record_failure;
use super::sink::StageSink;
use super::{abandoned, publish, retention, scratch};
use crate::error::{EngineError, EngineResult};
use crate::spec::Space;
use crate::store::{lease, manifest, objects};

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

pub(super) fn new_run_id(started: DateTime<Utc>) -> String {
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
        status: RunStatus::Running,
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
                let r = stages_then_publish(space, opts, progress, &out, &mut rec, &dead, &s).await;
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
            rec.status = RunStatus::Failed;
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

/// The stages (see [`super::compute`]) under the run's timeout and Ctrl-C, then the publish.
async fn stages_then_publish(
    space: &Space,
    opts: &RunOptions,
    progress: &dyn Progress,
    out: &objects::Location,
    rec: &mut RunRecord,
    dead: &[RunRecord],
    scratch: &scratch::Scratch,
) -> EngineResult<manifest::Manifest> {
    let sink = StageSink::Materialize;
    let (previous, space) = starting_point(space, out, rec.as_of).await?;
    let mut rc = RunCtx::new(
        &space,
        previous,
        opts,
        progress,
        out.clone(),
        rec,
        scratch.clone(),
        sink,
    )?;
    rc.keep_unchanged = true;
    // The stages before publishing, under the run's timeout; on timeout their futures (and the
    // DataFusion streams in them) are dropped. Publishing is never cut off half way.
    let computed = super::compute(&mut rc);
    let limited = async {
        match opts.timeout {
            None => computed.await,
            Some(limit) => tokio::time::timeout(limit, computed)
                .await
                .map_err(|_| timed_out(limit))?,
        }
    };
    let (events, identity) = match &opts.interrupt {
        None => limited.await?,
        Some(stop) => tokio::select! {
            ev = limited => ev?,
            () = stop.notified() => {
                return Err(EngineError::Stopped(
                    "the run was interrupted (Ctrl-C) before publishing; the last good run \
                     stays published"
                        .into(),
                ));
            }
        },
    };
    publish::publish(&mut rc, events, identity, dead).await
}

fn timed_out(limit: Duration) -> EngineError {
    EngineError::Stopped(format!(
        "the run exceeded its {} timeout (--timeout) and was stopped before publishing; the \
         last good run stays published",
        crate::spec::format_duration(limit)
    ))
}
