//! The `cohort` binary as a user meets it: init, validate's exit codes, generate's
//! determinism, run's flags, demo's summary.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::cohort_bin;

fn cohort(args: &[&str]) -> Output {
    Command::new(cohort_bin())
        .args(args)
        .env("CI", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tree_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_validate_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let d = dir.to_str().unwrap();
    let o = cohort(&["init", d, "--events", "20000"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("traits/total_revenue.yaml").exists());
    assert!(dir.join("data/events").is_dir());
    // init refuses to overwrite a space.
    let again = cohort(&["init", d]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    let v = cohort(&["validate", d]);
    assert!(v.status.success(), "{}", text(&v));
    assert!(text(&v).contains("space `store` is valid"), "{}", text(&v));

    let r = cohort(&["run", d, "--as-of", "2026-11-01", "--memory-limit", "512MB"]);
    assert!(r.status.success(), "{}", text(&r));
    let t = text(&r);
    assert!(
        t.contains("stage events done") && t.contains("published to file://"),
        "{t}"
    );
    assert!(dir.join("out/store/_cohort/manifest.json").exists());
    assert!(
        !dir.join("out/store/_cohort/lease.json").exists(),
        "the lease is released"
    );

    let bad = cohort(&["run", d, "--as-of", "yesterday-ish"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("is not a time"), "{}", text(&bad));
    let bad = cohort(&["run", d, "--memory-limit", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn validate_exits_2_and_reports_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("space.yaml"),
        "name: s\nspec_version: 1\nsources:\n  - name: web\n    preset: segmnt\n    url: ./missing\noutput: ./out\n",
    )
    .unwrap();
    std::fs::create_dir(tmp.path().join("traits")).unwrap();
    std::fs::write(tmp.path().join("traits/t.yaml"), "quer: \"x\"\n").unwrap();
    let o = cohort(&["validate", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("space.yaml:5:13") && t.contains("did you mean `segment`?"),
        "{t}"
    );
    assert!(
        t.contains("traits/t.yaml:1:1") && t.contains("did you mean `query`?"),
        "{t}"
    );
}

#[test]
fn generate_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    for (dir, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let o = cohort(&[
            "generate",
            "--preset",
            "segment",
            "--events",
            "5000",
            "--seed",
            seed,
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let (ta, tb, tc) = (tree_bytes(&a), tree_bytes(&b), tree_bytes(&c));
    assert!(
        ta.iter().any(|(n, _)| n.starts_with("identifies/dt=")),
        "{:?}",
        ta.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    assert_eq!(ta, tb, "same seed, same bytes");
    assert_ne!(ta, tc, "another seed, other data");
    let bad = cohort(&[
        "generate",
        "--preset",
        "snowplow",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn demo_prints_its_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = cohort(&["demo", "--dir", dir.to_str().unwrap(), "--events", "30000"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for needle in [
        "Generated 30000 events",
        "events from",
        "published to",
        "Try next:",
        "cohort run",
    ] {
        assert!(t.contains(needle), "demo output lacks {needle:?}:\n{t}");
    }
    assert!(dir.join("out/store/runs/_delta_log").is_dir());
}
