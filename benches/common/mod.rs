//! What the benchmarks share: the generated data, and for those that compare with DuckDB the
//! minimal event view both engines read, running hand-written SQL in DuckDB (from the bench
//! venv), summarizing a result and comparing the two summaries. Each bench uses a part of it;
//! [`space`] holds whole runs of `benches/space` for the end-to-end benches.
#![allow(dead_code)]

pub mod space;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cohort::generate::GenerateOptions;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::logical_expr::{LogicalPlan, cast, try_cast};
use datafusion::prelude::{ParquetReadOptions, SessionContext, coalesce, col};

/// Runs the DuckDB side: argv = sql file, summary query, repeats, then `@NAME@=value`
/// replacements for the SQL text.
const DUCKDB_RUNNER: &str = r#"
import json, sys, time
import duckdb
sql = open(sys.argv[1]).read()
for kv in sys.argv[4:]:
    k, v = kv.split("=", 1)
    sql = sql.replace(k, v)
best = None
for _ in range(int(sys.argv[3])):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    t = time.perf_counter()
    con.execute("CREATE TEMP TABLE r AS " + sql)
    s = time.perf_counter() - t
    best = s if best is None else min(best, s)
    summary = [None if v is None else str(v) for v in con.execute(sys.argv[2]).fetchone()]
    con.close()
print(json.dumps({"secs": best, "version": duckdb.__version__, "summary": summary}))
"#;

/// Generates `events` sample events of the `events` preset into `data`.
pub async fn generate(data: &Path, events: u64, seed: u64) {
    let opts = GenerateOptions {
        events,
        seed,
        ..Default::default()
    };
    let loc = cohort::store::objects::open_raw(Path::new("/"), data.to_str().expect("utf-8"))
        .expect("open data folder");
    let g = cohort::generate::generate(&opts, &loc, &|_| {})
        .await
        .expect("generate");
    println!(
        "generate events={} users={} secs={:.2}",
        g.events,
        g.users,
        g.elapsed.as_secs_f64()
    );
}

/// Adds `opts`' events to the `events`-preset folder `data` without touching its files: they
/// are generated into `staging` (a new folder on the same file system), then each file moves
/// into `data`'s matching `dt=` partition as `<prefix><name>`, never over an existing file.
/// `old_partitions`: every partition must exist already (late files), else none may (new
/// days). Returns the files and the partitions added to.
pub async fn add_events(
    data: &Path,
    staging: &Path,
    opts: &GenerateOptions,
    prefix: &str,
    old_partitions: bool,
) -> (usize, usize) {
    assert!(!staging.exists(), "{} exists already", staging.display());
    std::fs::create_dir_all(staging).expect("staging folder");
    let loc = cohort::store::objects::open_raw(Path::new("/"), staging.to_str().expect("utf-8"))
        .expect("open staging folder");
    let g = cohort::generate::generate(opts, &loc, &|_| {})
        .await
        .expect("generate");
    let mut parts: Vec<_> = std::fs::read_dir(staging)
        .expect("staging folder")
        .map(|e| e.expect("entry").path())
        .collect();
    parts.sort();
    let mut files = 0;
    for part in &parts {
        let name = part.file_name().expect("partition name");
        let dest = data.join(name);
        assert_eq!(
            dest.is_dir(),
            old_partitions,
            "partition {} should {}exist",
            dest.display(),
            if old_partitions { "" } else { "not " }
        );
        std::fs::create_dir_all(&dest).expect("partition folder");
        for f in std::fs::read_dir(part).expect("partition") {
            let f = f.expect("entry").path();
            let file_name = f.file_name().expect("file name").to_str().expect("utf-8");
            let to = dest.join(format!("{prefix}{file_name}"));
            assert!(!to.exists(), "{} exists already", to.display());
            std::fs::rename(&f, &to).expect("move into the source folder");
            files += 1;
        }
    }
    std::fs::remove_dir_all(staging).expect("remove staging folder");
    let names = |p: Option<&PathBuf>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    println!(
        "added events={} files={files} partitions={} first={} last={} prefix={prefix:?} secs={:.2}",
        g.events,
        parts.len(),
        names(parts.first()),
        names(parts.last()),
        g.elapsed.as_secs_f64()
    );
    (files, parts.len())
}

/// The minimal event view both engines read: profile, event, message_id, timestamp, JSON text.
pub async fn event_view(ctx: &SessionContext, data: &Path) -> LogicalPlan {
    let options = ParquetReadOptions::default();
    let raw = ctx
        .read_parquet(format!("{}/", data.display()), options)
        .await
        .expect("read parquet");
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    raw.select(vec![
        coalesce(vec![col("user_id"), col("anonymous_id")]).alias("profile_id"),
        col("event"),
        col("message_id"),
        try_cast(cast(col("timestamp"), DataType::Utf8), ts).alias("timestamp"),
        col("properties"),
        col("context"),
    ])
    .expect("select")
    .into_unoptimized_plan()
}

/// The bench venv's python: `COHORT_PYTHON`, else the one `bash .ci/venv` sets up.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("COHORT_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join(".ci/venv"))
        .output()
        .expect("bash .ci/venv");
    assert!(out.status.success(), "bash .ci/venv failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim()).join("bin/python")
}

/// Runs `sql` (with `@NAME@` placeholders replaced) in DuckDB `repeat` times into a table `r`,
/// then `summary` over it; returns the best seconds, DuckDB's version and the summary row.
pub fn duckdb(
    sql: &str,
    replace: &[(&str, &Path)],
    summary: &str,
    repeat: usize,
) -> (f64, String, Vec<Option<String>>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bench.sql");
    std::fs::write(&file, sql).expect("write sql");
    let runner = dir.path().join("run.py");
    std::fs::write(&runner, DUCKDB_RUNNER).expect("write runner");
    let mut cmd = Command::new(python());
    cmd.arg(&runner)
        .arg(&file)
        .arg(summary)
        .arg(repeat.to_string());
    for (k, v) in replace {
        cmd.arg(format!("{k}={}", v.display()));
    }
    let out = cmd.output().expect("python");
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runner json");
    let summary = v["summary"]
        .as_array()
        .expect("summary")
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect();
    (
        v["secs"].as_f64().expect("secs"),
        v["version"].as_str().unwrap_or("?").to_string(),
        summary,
    )
}

/// Runs `summary` (SQL over a table `r`) over `batches` in `ctx`; returns its one row as text
/// cells (None for null).
pub async fn summarize(
    ctx: &SessionContext,
    batches: Vec<datafusion::arrow::record_batch::RecordBatch>,
    summary: &str,
) -> Vec<Option<String>> {
    let schema = batches[0].schema();
    ctx.register_table(
        "r",
        Arc::new(datafusion::catalog::MemTable::try_new(schema, vec![batches]).expect("mem table")),
    )
    .expect("register");
    let out = ctx
        .sql(summary)
        .await
        .expect("summary")
        .collect()
        .await
        .expect("summary");
    let b = &out[0];
    (0..b.num_columns())
        .map(|i| {
            let c = b.column(i);
            (!c.is_null(0)).then(|| {
                datafusion::arrow::util::display::array_value_to_string(c, 0).expect("value")
            })
        })
        .collect()
}

/// Positions where the summaries differ (numbers within a relative 1e-9 are equal).
pub fn compare(a: &[Option<String>], b: &[Option<String>]) -> Vec<String> {
    if a.len() != b.len() {
        return vec![format!("lengths {} vs {}", a.len(), b.len())];
    }
    let mut out = Vec::new();
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let same = match (x, y) {
            (Some(x), Some(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                _ => x == y,
            },
            (None, None) => true,
            _ => false,
        };
        if !same {
            out.push(format!("{i}:{x:?}/{y:?}"));
        }
    }
    out
}

/// `(VmHWM, VmRSS)` in MB, 0 when unknown.
pub fn rss_mb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets VmHWM to the current RSS (Linux 4.0+), so the next reading is this phase's peak.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
