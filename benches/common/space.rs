//! Whole runs of `benches/space`, shared by the end-to-end benches (`suite`, `incremental`):
//! copying the space next to generated events, running it with each stage's time and peak RSS
//! and a summary of its run record, and running the hand-written DuckDB peer of the same
//! workload (`queries/bench/suite_duckdb.py`) for comparison.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cohort::run::{Progress, RunOptions};

/// Records each stage's peak RSS as the run reports it finished.
#[derive(Default)]
struct PeakPerStage(Mutex<Vec<(String, u64)>>);

impl Progress for PeakPerStage {
    fn stage_started(&self, _stage: &str) {
        super::reset_peak();
    }
    fn stage_finished(&self, stage: &str, _elapsed: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((stage.to_string(), super::rss_mb().0));
    }
}

/// A copy of `benches/space` in `dir` whose source reads `data`.
pub fn write_space(dir: &Path, data: &Path) {
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

/// Run options as of `as_of` with `--memory-limit` (a size such as `6GB`) and spill files in
/// `spill`.
pub fn run_options(
    as_of: DateTime<Utc>,
    full_rebuild: bool,
    memory_limit: Option<&str>,
    spill: PathBuf,
) -> RunOptions {
    let mut opts = RunOptions {
        as_of: Some(as_of),
        full_rebuild,
        ..Default::default()
    };
    opts.session.memory_limit = memory_limit.map(|m| {
        cohort::spec::parse_memory_limit(m).unwrap_or_else(|| panic!("not a size: {m}")) as usize
    });
    opts.session.spill_dir = Some(spill);
    opts
}

/// One run: wall seconds, (stage, seconds, peak RSS MB) in run order, the highest peak, and
/// the run record as JSON.
pub struct Measured {
    pub secs: f64,
    pub stages: Vec<(String, f64, u64)>,
    pub peak: u64,
    pub record: serde_json::Value,
}

impl Measured {
    /// `stage:secs,...` in run order.
    pub fn stage_list(&self) -> String {
        self.stages
            .iter()
            .map(|(s, secs, _)| format!("{s}:{secs:.2}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Validates the space in `dir` (so edited definitions are read again) and runs it, printing a
/// `run ...` summary line and a `record {...}` line with the rest of the run record.
pub async fn run_space(dir: &Path, opts: &RunOptions) -> Measured {
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
    let record = serde_json::to_value(&report.record).expect("run record as JSON");
    print_record(&record, secs);
    Measured {
        secs,
        stages,
        peak,
        record,
    }
}

/// Prints the headline of a run record, then the rest of it as compact JSON without what is
/// long and printed elsewhere (definitions, stage timings, per-column and per-audience lists).
/// Read as JSON so that fields the record gains later are printed too.
fn print_record(rec: &serde_json::Value, secs: f64) {
    let int = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    let id = &rec["identity"];
    let identity = if id.is_object() {
        let timings = id["timings"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, s)| format!("{k}={:.2}", s.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        format!(
            "mode:{},rounds:{},timings:{timings}",
            id["mode"].as_str().unwrap_or("?"),
            int(&id["rounds"])
        )
    } else {
        String::new()
    };
    println!(
        "run events={} duplicates={} bad={} profiles={} secs={secs:.2} identity={identity}",
        int(&rec["events"]),
        int(&rec["duplicates"]),
        int(&rec["bad_events"]),
        int(&rec["profiles"]["profiles"]),
    );
    let mut rest = rec.clone();
    let drop = |v: &mut serde_json::Value, keys: &[&str]| {
        if let Some(m) = v.as_object_mut() {
            for k in keys {
                m.remove(*k);
            }
        }
    };
    drop(
        &mut rest,
        &[
            "definitions",
            "definitions_hash",
            "stage_timings",
            "space",
            "started_at",
            "finished_at",
        ],
    );
    drop(
        &mut rest["identity"],
        &["timings", "largest_components", "edges_per_round"],
    );
    drop(
        &mut rest["profiles"],
        &[
            "custom_traits",
            "account_traits",
            "computed_traits",
            "sql_traits",
        ],
    );
    // Per-audience counts become totals.
    if let Some(list) = rest["audiences"]["audiences"].as_object() {
        let total = |k: &str| list.values().map(|a| int(&a[k])).sum::<i64>();
        let totals = serde_json::json!({
            "count": list.len(),
            "members": total("members"),
            "entered": total("entered"),
            "exited": total("exited"),
        });
        rest["audiences"]["audiences"] = totals;
    }
    println!("record {rest}");
}

/// The DuckDB peer's seconds per stage (events, identity, traits, sql_traits, audiences) and
/// its JSON report.
pub struct Duck {
    pub stages: Vec<(String, f64)>,
    pub report: serde_json::Value,
}

/// Runs the DuckDB peer (`queries/bench/suite_duckdb.py`, 2 threads) over `data` and prints
/// its report.
pub fn duckdb_suite(data: &Path) -> Duck {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(super::python())
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
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("duckdb json");
    println!("duckdb {report}");
    let stages = ["events", "identity", "traits", "sql_traits", "audiences"]
        .iter()
        .map(|s| (s.to_string(), report["secs"][s].as_f64().unwrap_or(0.0)))
        .collect();
    Duck { stages, report }
}

/// Prints a full run's stages against the DuckDB peer's as a markdown table; returns
/// (Cohort's stage total, DuckDB's total, their ratio) when there is a peer. Cohort's `traits`
/// stage holds profiles, computed and SQL traits: it is compared with DuckDB's traits +
/// sql_traits. `publish` (Delta tables) has no DuckDB peer.
pub fn print_vs_duckdb(
    events: u64,
    full: &Measured,
    duck: Option<&Duck>,
) -> Option<(f64, f64, f64)> {
    let peer = |stage: &str| -> Option<f64> {
        let d = &duck?.stages;
        let get = |s: &str| d.iter().find(|(k, _)| k == s).map(|(_, x)| *x);
        match stage {
            "traits" => Some(get("traits")? + get("sql_traits")?),
            "publish" => None,
            s => get(s),
        }
    };
    println!("| stage (events={events}) | Cohort s | peak RSS MB | DuckDB s | Cohort / DuckDB |");
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
        let ratio = stage_total / duck_total;
        println!(
            "| **total** (wall {:.2} s) | {stage_total:.2} | {} | {duck_total:.2} | **{ratio:.2}** |",
            full.secs, full.peak,
        );
        Some((stage_total, duck_total, ratio))
    } else {
        println!(
            "| **total** (wall {:.2} s) | {stage_total:.2} | {} | - | - |",
            full.secs, full.peak
        );
        None
    }
}
