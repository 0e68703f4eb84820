//! The end-to-end benchmark: a whole run of `benches/space` (identity, 21 computed traits,
//! 2 SQL traits, 30 audiences, publish) on generated events, against the same workload written
//! by hand for DuckDB (`queries/bench/suite_duckdb.py` and the SQL it reads), then an
//! incremental run after 1 % more events.
//!
//! Goals (issue 7): a full recompute in at most half of DuckDB's time; an incremental
//! recompute after 1 % more events in at most 5 % of the full one; 100 M events under an 8 GB
//! memory limit to completion.
//!
//! For each `--events` count (default `1000000,10000000`) it generates the events (fixed
//! `--seed`, 365 days ending 2026-11-01), copies `benches/space` next to them with the source
//! pointing at the Parquet, runs `cohort::run::run` with `full_rebuild` as of 2026-11-01
//! and prints each stage's time and peak RSS (VmHWM, reset before each stage), then runs the
//! DuckDB peer (2 threads, unless `--skip-duckdb`) and prints the ratio per stage and in
//! total. Then (unless `--skip-incremental`) it appends 1 % more events dated 2026-11-01 (a new
//! seed, so new message ids) into the same source folder and runs again without
//! `full_rebuild`, as of 2026-11-02.
//!
//! `cargo bench --bench suite -- --events 1000000,10000000`
//! `cargo bench --bench suite -- --events 100000000 --memory-limit 8GB --skip-duckdb --skip-incremental`
//! `--keep DIR` keeps the data and the published tables in DIR.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use cohort::generate::GenerateOptions;
use cohort::run::{Progress, RunOptions};

struct Args {
    events: Vec<u64>,
    seed: u64,
    memory_limit: Option<String>,
    skip_duckdb: bool,
    skip_incremental: bool,
    keep: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: vec![1_000_000, 10_000_000],
        seed: 42,
        memory_limit: None,
        skip_duckdb: false,
        skip_incremental: false,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        let number = |v: &str| -> u64 {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {v}"))
        };
        match a.as_str() {
            "--events" => args.events = value().split(',').map(number).collect(),
            "--seed" => args.seed = number(&value()),
            "--memory-limit" => args.memory_limit = Some(value()),
            "--skip-duckdb" => args.skip_duckdb = true,
            "--skip-incremental" => args.skip_incremental = true,
            "--keep" => args.keep = Some(PathBuf::from(value())),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Records each stage's peak RSS as the run reports it finished.
#[derive(Default)]
struct PeakPerStage(Mutex<Vec<(String, u64)>>);

impl Progress for PeakPerStage {
    fn stage_started(&self, _stage: &str) {
        common::reset_peak();
    }
    fn stage_finished(&self, stage: &str, _elapsed: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((stage.to_string(), common::rss_mb().0));
    }
}

/// A copy of `benches/space` in `dir` whose source reads `data`.
fn write_space(dir: &Path, data: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/space");
    for sub in ["", "traits", "audiences", "queries"] {
        std::fs::create_dir_all(dir.join(sub)).expect("space folder");
        for e in std::fs::read_dir(src.join(sub)).expect("benches/space") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_file() {
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).expect("copy");
            }
        }
    }
    let yaml = std::fs::read_to_string(dir.join("space.yaml")).expect("space.yaml");
    let yaml = yaml.replace(
        "url: ./data/events",
        &format!("url: {}", data.to_str().expect("utf-8")),
    );
    std::fs::write(dir.join("space.yaml"), yaml).expect("space.yaml");
}

struct Measured {
    secs: f64,
    stages: Vec<(String, f64, u64)>,
    peak: u64,
}

async fn run_space(dir: &Path, opts: &RunOptions) -> Measured {
    let v = cohort::analyze::validate_space(dir).await;
    let Some(space) = v.space else {
        panic!(
            "the bench space is invalid:\n{}",
            cohort::spec::render_all(&v.diagnostics, dir)
        );
    };
    let progress = PeakPerStage::default();
    let t = Instant::now();
    let report = cohort::run::run(&space, opts, &progress)
        .await
        .unwrap_or_else(|e| panic!("run failed after {:.1} s: {e}", t.elapsed().as_secs_f64()));
    let secs = t.elapsed().as_secs_f64();
    let peaks = progress.0.into_inner().unwrap();
    let stages: Vec<_> = report
        .record
        .stage_timings
        .iter()
        .map(|(s, ms)| {
            let peak = peaks.iter().find(|(p, _)| p == s).map_or(0, |(_, m)| *m);
            (s.clone(), *ms as f64 / 1000.0, peak)
        })
        .collect();
    let peak = stages.iter().map(|s| s.2).max().unwrap_or(0);
    let rec = &report.record;
    println!(
        "run events={} duplicates={} bad={} profiles={} secs={secs:.2} identity={}",
        rec.events,
        rec.duplicates,
        rec.bad_events,
        rec.profiles.as_ref().map_or(0, |p| p.profiles),
        rec.identity
            .as_ref()
            .map(|i| format!(
                "mode:{},rounds:{},timings:{}",
                i.mode,
                i.rounds,
                i.timings
                    .iter()
                    .map(|(k, s)| format!("{k}={s:.2}"))
                    .collect::<Vec<_>>()
                    .join("/")
            ))
            .unwrap_or_default()
    );
    Measured { secs, stages, peak }
}

/// Runs the DuckDB peer; returns seconds per stage (events, identity, traits, sql_traits,
/// audiences) and its JSON report.
fn duckdb(data: &Path) -> (Vec<(String, f64)>, serde_json::Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(common::python())
        .arg(root.join("queries/bench/suite_duckdb.py"))
        .arg(data)
        .arg(root)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("duckdb json");
    let stages = ["events", "identity", "traits", "sql_traits", "audiences"]
        .iter()
        .map(|s| (s.to_string(), v["secs"][s].as_f64().unwrap_or(0.0)))
        .collect();
    (stages, v)
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tmp = tempfile::tempdir().expect("temp dir");
    let base = args
        .keep
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let memory_limit = args.memory_limit.as_deref().map(|m| {
        cohort::spec::parse_memory_limit(m).unwrap_or_else(|| panic!("not a size: {m}")) as usize
    });
    let as_of = GenerateOptions::default().end;
    for &n in &args.events {
        let dir = base.join(format!("events_{n}"));
        let data = dir.join("data/events");
        std::fs::create_dir_all(&data).expect("data folder");
        rt.block_on(common::generate(&data, n, args.seed));
        let space = dir.join("space");
        write_space(&space, &data);
        let mut opts = RunOptions {
            as_of: Some(as_of),
            full_rebuild: true,
            ..Default::default()
        };
        opts.session.memory_limit = memory_limit;
        opts.session.spill_dir = Some(dir.join("spill"));
        let full = rt.block_on(run_space(&space, &opts));

        let duck = (!args.skip_duckdb).then(|| duckdb(&data));
        if let Some((_, v)) = &duck {
            println!("duckdb {v}");
        }
        // Cohort's `traits` stage holds profiles, computed and SQL traits: it is compared
        // with DuckDB's traits + sql_traits. `publish` (Delta tables) has no DuckDB peer.
        let peer = |stage: &str| -> Option<f64> {
            let d = &duck.as_ref()?.0;
            let get = |s: &str| d.iter().find(|(k, _)| k == s).map(|(_, x)| *x);
            match stage {
                "traits" => Some(get("traits")? + get("sql_traits")?),
                "publish" => None,
                s => get(s),
            }
        };
        println!("| stage (events={n}) | Cohort s | peak RSS MB | DuckDB s | Cohort / DuckDB |");
        println!("|---|---|---|---|---|");
        let mut duck_total = 0.0;
        for (s, secs, peak) in &full.stages {
            let d = peer(s);
            duck_total += d.unwrap_or(0.0);
            println!(
                "| {s} | {secs:.2} | {peak} | {} | {} |",
                d.map_or("-".into(), |d| format!("{d:.2}")),
                d.map_or("-".into(), |d| format!("{:.2}", secs / d)),
            );
        }
        let stage_total: f64 = full.stages.iter().map(|s| s.1).sum();
        if duck.is_some() {
            println!(
                "| **total** (wall {:.2} s) | {stage_total:.2} | {} | {duck_total:.2} | **{:.2}** |",
                full.secs,
                full.peak,
                stage_total / duck_total
            );
        } else {
            println!(
                "| **total** (wall {:.2} s) | {stage_total:.2} | {} | - | - |",
                full.secs, full.peak
            );
        }
        println!(
            "full events={n} secs={:.2} peak_rss_mb={} memory_limit={}",
            full.secs,
            full.peak,
            args.memory_limit.as_deref().unwrap_or("none")
        );

        if args.skip_incremental {
            continue;
        }
        // 1 % more events, all on 2026-11-01, new message ids (another seed).
        let more = GenerateOptions {
            events: (n / 100).max(1),
            seed: args.seed + 1,
            days: 1,
            end: Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap(),
            ..Default::default()
        };
        let loc = cohort::store::objects::open_raw(Path::new("/"), data.to_str().expect("utf-8"))
            .expect("data folder");
        rt.block_on(cohort::generate::generate(&more, &loc, &|_| {}))
            .expect("generate more");
        let inc_opts = RunOptions {
            as_of: Some(more.end),
            full_rebuild: false,
            ..opts.clone()
        };
        let inc = rt.block_on(run_space(&space, &inc_opts));
        println!(
            "incremental events={n} appended={} secs={:.2} stages={} fraction_of_full={:.3} goal<=0.05",
            more.events,
            inc.secs,
            inc.stages
                .iter()
                .map(|(s, secs, _)| format!("{s}:{secs:.2}"))
                .collect::<Vec<_>>()
                .join(","),
            inc.secs / full.secs
        );
    }
}
