//! The bench space on Apache Spark against `cohort run` on the same machine (issue 22: no goal
//! on the ratio; Spark in `local[2]` on two cores is not where it shines, and the figure tells
//! users what to expect). It drives the built `cohort` binary as a user does: copies
//! `benches/space` into a temp folder, `cohort generate`s `--events` events (10 M by default)
//! into it, then `cohort run --full` and `cohort run --on spark --spark-master local[2]` of the
//! space as of 2026-11-01, one after the other, and prints both wall times side by side.
//!
//! Spark comes from `--spark-submit PATH` or the PATH (PySpark's `spark-submit`, as `.ci/venv`
//! installs it). Prints `events=... cohort_run_s=... spark_s=... ratio=...`.
//! `cargo bench --bench spark -- --events 10000000 --spark-submit ~/.cache/cohort/venv/bin/spark-submit`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// Runs `cohort args` in `cwd` and returns its wall time in seconds.
fn timed(args: &[&str], cwd: &Path) -> f64 {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(args)
        .current_dir(cwd)
        .env("CI", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("the cohort binary runs");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "cohort {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    secs
}

/// Copies the space's definitions (not its data or output) from `from` to `to`.
fn copy_space(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "data" || name == "out" {
            continue;
        }
        match e.file_type().unwrap().is_dir() {
            true => copy_space(&e.path(), &to.join(&name)),
            false => {
                std::fs::copy(e.path(), to.join(&name)).unwrap();
            }
        }
    }
}

fn main() {
    let events = arg("--events", "10000000");
    let submit = arg("--spark-submit", "spark-submit");
    let tmp = tempfile::tempdir().unwrap();
    let space = tmp.path().join("bench");
    copy_space(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/space"),
        &space,
    );
    let generated = timed(
        &[
            "generate",
            "--preset",
            "events",
            "--events",
            &events,
            "--seed",
            "7",
            "--out",
            "bench/data/events",
        ],
        tmp.path(),
    );
    println!("generated {events} events in {generated:.1}s");
    let as_of = "2026-11-01";
    let run = timed(&["run", "bench", "--full", "--as-of", as_of], tmp.path());
    println!("cohort run: {run:.1}s");
    let spark = timed(
        &[
            "run",
            "bench",
            "--on",
            "spark",
            "--spark-master",
            "local[2]",
            "--spark-submit",
            &submit,
            "--as-of",
            as_of,
        ],
        tmp.path(),
    );
    println!(
        "events={events} cohort_run_s={run:.2} spark_s={spark:.2} ratio={:.2}",
        spark / run
    );
}
