//! How the audiences stage grows with the length of one audience's `AND` chain (issue 17:
//! 3.9 s at 500 conditions, 65.7 s at 2,000, over 300 s at 6,000 before junctions were built
//! as balanced trees). It runs the built `cohort` binary as a user does: `cohort init` of the
//! starter space (100 000 events) in a temp folder, then for each kind of condition and each
//! length N an audience `long_and` of N ANDed conditions and `cohort run --as-of 2026-11-01`,
//! reading the audiences stage's time from the run's own summary.
//!
//! Kinds: `trait` (`trait('total_revenue') > k`) and `event`
//! (`event('Order Completed').within(i days).count() >= 0`, a column of the fused aggregation
//! each). There is no peer engine for this figure: the peer is linear growth, so each line
//! prints `growth` = (time / first time) / (N / first N), 1.0 when linear.
//!
//! Prints `kind=... n=... audiences_s=... growth=...` lines.
//! `cargo bench --bench junctions -- --sizes 500,2000,6000 --kinds trait,event`

use std::path::Path;
use std::process::Command;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn cohort(args: &[&str], cwd: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_cohort"))
        .args(args)
        .current_dir(cwd)
        .env("CI", "1")
        .output()
        .expect("the cohort binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "cohort {args:?} failed:\n{text}");
    text
}

fn condition(kind: &str, i: usize) -> String {
    match kind {
        "trait" => format!("trait('total_revenue') > {}", i % 97),
        "event" => format!(
            "event('Order Completed').within({} days).count() >= 0",
            i + 1
        ),
        other => panic!("unknown kind `{other}` (trait or event)"),
    }
}

fn main() {
    let sizes: Vec<usize> = arg("--sizes", "500,2000,6000")
        .split(',')
        .map(|s| s.trim().parse().expect("--sizes: numbers"))
        .collect();
    let kinds = arg("--kinds", "trait,event");
    let tmp = tempfile::tempdir().unwrap();
    cohort(&["init", "s"], tmp.path());
    let audience = tmp.path().join("s/audiences/long_and.yaml");
    for kind in kinds.split(',') {
        let mut first: Option<(usize, f64)> = None;
        for &n in &sizes {
            let query: Vec<String> = (0..n).map(|i| condition(kind, i)).collect();
            std::fs::write(
                &audience,
                format!("name: Long\nquery: \"{}\"\n", query.join(" AND ")),
            )
            .unwrap();
            let out = cohort(&["run", "s", "--as-of", "2026-11-01"], tmp.path());
            let secs: f64 = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("stage audiences done in "))
                .and_then(|s| s.trim_end_matches('s').parse().ok())
                .expect("the run prints the audiences stage's time");
            let (n0, t0) = *first.get_or_insert((n, secs));
            let growth = (secs / t0) / (n as f64 / n0 as f64);
            println!("kind={kind} n={n} audiences_s={secs:.2} growth={growth:.2}");
        }
    }
}
