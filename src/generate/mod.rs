//! Realistic, deterministic sample data for every source preset: an online store's Segment-spec
//! events (tracks, pages, screens, identifies, groups, aliases) over a year, with the hard
//! cases identity resolution must survive, written as Parquet in the preset's exact layout.
//!
//! Same seed and options give byte-identical files. Users are derived from `hash(seed, index)`
//! and days are generated independently (in parallel), so memory stays bounded by the file size
//! whatever the number of events.
//!
//! Layouts:
//! - `events`: `<out>/dt=YYYY-MM-DD/part-NNNNN.parquet` with [`EVENTS_COLUMNS`] (all Utf8; the
//!   last three JSON text). `dt` is the day the message arrived.
//! - `segment`, `rudderstack`: `<out>/<table>/dt=YYYY-MM-DD/part-NNNNN.parquet`, tables and
//!   columns as [`table_schemas`] returns them.

mod catalog;
mod event;
mod output;
mod rng;
mod sim;
mod sink;
mod text;
mod world;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use tokio::sync::mpsc;

use crate::error::{GenerateError, GenerateResult};
use crate::spec::Preset;
use crate::store::objects::Location;

pub use sink::{EVENTS_COLUMNS, events_schema};

use output::{EncodedFile, Output, writer_properties};
use sim::{Sink, Stats, run_day};
use sink::{Dialect, EventsSink, WarehouseSink, warehouse_tables};
use world::World;

/// The default end of generated data (exclusive): 2026-11-01T00:00:00Z.
pub const DEFAULT_END: DateTime<Utc> = match DateTime::<Utc>::from_timestamp(1_793_491_200, 0) {
    Some(t) => t,
    None => panic!("valid constant"),
};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub preset: Preset,
    /// Messages to write, exactly (duplicates and bad rows included; a track call written to
    /// both `tracks` and its per-event table counts once).
    pub events: u64,
    pub seed: u64,
    /// Days of data, ending at `end`.
    pub days: u32,
    /// The end of the data, exclusive; the last day is the one containing `end - 1ms`.
    pub end: DateTime<Utc>,
    /// Rows per Parquet file at most (a file also ends with its day).
    pub rows_per_file: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            preset: Preset::Events,
            events: 100_000,
            seed: 42,
            days: 365,
            end: DEFAULT_END,
            rows_per_file: 250_000,
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerateReport {
    /// Messages written, duplicates and bad rows included (equals `GenerateOptions::events`).
    pub events: u64,
    pub files: u64,
    pub bytes: u64,
    /// People in the simulated population (about `events / 30`); some may have no events.
    pub users: u64,
    /// Exact re-sends of an earlier message (same message id).
    pub duplicates: u64,
    /// Deliberately broken rows (`events` preset only).
    pub bad_rows: u64,
    /// Messages whose timestamp is on an earlier day than their `dt` partition.
    pub late: u64,
    pub elapsed: Duration,
}

/// Every table a preset writes, in a fixed order, with its exact Arrow schema. `events` has one
/// table, named `events` here, written directly under the output (no table folder).
pub fn table_schemas(preset: Preset) -> Vec<(String, SchemaRef)> {
    let dialect = match preset {
        Preset::Events => return vec![("events".to_string(), events_schema())],
        Preset::Segment => Dialect::Segment,
        Preset::Rudderstack => Dialect::Rudderstack,
    };
    warehouse_tables(dialect)
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect()
}

/// Generates the data set described by `opts` under `out`. `progress` is called after each
/// file with the number of messages written so far.
pub async fn generate(
    opts: &GenerateOptions,
    out: &Location,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> GenerateResult<GenerateReport> {
    if opts.days == 0 {
        return Err(GenerateError::Invalid("days must be at least 1".into()));
    }
    if opts.rows_per_file == 0 {
        return Err(GenerateError::Invalid(
            "rows per file must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let world = Arc::new(World::new(opts));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(opts.days as usize);
    let (tx, rx) = mpsc::channel::<EncodedFile>(workers * 2);
    let output = Output {
        prefix: out.prefix.clone(),
        rows_per_file: opts.rows_per_file,
        props: Arc::new(writer_properties()),
        tx,
    };
    let next_day = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (world, output) = (world.clone(), output.clone());
            let (next_day, stop) = (next_day.clone(), stop.clone());
            tokio::task::spawn_blocking(move || worker(&world, output, &next_day, &stop))
        })
        .collect();
    drop(output);

    let store = out.store.clone();
    let files =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut puts = files
        .map(|f: EncodedFile| {
            let store = store.clone();
            async move {
                let (n, m) = (f.bytes.len() as u64, f.messages);
                store.put(&f.path, f.bytes.into()).await.map(|_| (n, m))
            }
        })
        .buffer_unordered(8)
        .boxed();
    let mut report = GenerateReport {
        users: world.n_users,
        ..GenerateReport::default()
    };
    let mut failure: Option<GenerateError> = None;
    while let Some(put) = puts.next().await {
        match put {
            Ok((bytes, messages)) => {
                report.files += 1;
                report.bytes += bytes;
                report.events += messages;
                progress(report.events);
            }
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(puts);
    let mut stats = Stats::default();
    for h in handles {
        match h.await {
            Ok(Ok(s)) => stats += s,
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(GenerateError::Invalid(format!(
                    "generator thread failed: {e}"
                )));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    debug_assert_eq!(stats.events, report.events);
    report.duplicates = stats.duplicates;
    report.bad_rows = stats.bad_rows;
    report.late = stats.late;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// One generator thread: takes days until none are left (or another thread failed).
fn worker(
    world: &World,
    output: Output,
    next_day: &AtomicU32,
    stop: &AtomicBool,
) -> GenerateResult<Stats> {
    match world.preset {
        Preset::Events => days(world, &mut EventsSink::new(output), next_day, stop),
        Preset::Segment => days(
            world,
            &mut WarehouseSink::new(output, Dialect::Segment),
            next_day,
            stop,
        ),
        Preset::Rudderstack => days(
            world,
            &mut WarehouseSink::new(output, Dialect::Rudderstack),
            next_day,
            stop,
        ),
    }
}

fn days<S: Sink>(
    world: &World,
    sink: &mut S,
    next_day: &AtomicU32,
    stop: &AtomicBool,
) -> GenerateResult<Stats> {
    let mut stats = Stats::default();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(stats);
        }
        let d = next_day.fetch_add(1, Ordering::Relaxed);
        if d >= world.days {
            return Ok(stats);
        }
        sink.start_day(world.first_day + d as i64);
        match run_day(world, d, sink) {
            Ok(s) => stats += s,
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}
