//! `cohort compile --script` against `cohort run` of the same space (issue 18: the script must
//! take at most 1.5x a run; it took 22x when the script's stages were views that every later
//! stage recomputed from the raw sources). It drives the built `cohort` binary as a user does:
//! `cohort demo` in a temp folder (1 M events by default), then, alternating, `cohort run` and
//! `cohort compile --script --dialect duckdb` of the demo space as of 2026-11-01, each
//! `--rounds` times, and prints the median of each and their ratio.
//!
//! Prints `events=... run_s=... script_s=... ratio=...` (the peer is `cohort run`; the goal is
//! ratio <= 1.5).
//! `cargo bench --bench script -- --events 1000000 --rounds 3`

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

/// Runs `cohort args` in `cwd` (stdout discarded) and returns its wall time in seconds.
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let events = arg("--events", "1000000");
    let rounds: usize = arg("--rounds", "3").parse().expect("--rounds: a number");
    let tmp = tempfile::tempdir().unwrap();
    let demo = timed(&["demo", "--dir", "demo", "--events", &events], tmp.path());
    println!("demo generated and first run in {demo:.1}s");
    let (mut runs, mut scripts) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        runs.push(timed(&["run", "demo", "--as-of", "2026-11-01"], tmp.path()));
        scripts.push(timed(
            &[
                "compile",
                "demo",
                "--script",
                "--dialect",
                "duckdb",
                "--as-of",
                "2026-11-01",
            ],
            tmp.path(),
        ));
    }
    let (run, script) = (median(runs), median(scripts));
    println!(
        "events={events} run_s={run:.2} script_s={script:.2} ratio={:.2}",
        script / run
    );
}
