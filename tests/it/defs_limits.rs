//! Definitions that once crashed or flooded `cohort validate` and `cohort run` (issue 17):
//! deep nesting, thousands of `NOT`s, unclosed parentheses, 30,000 unknown destinations on one
//! line, a space.yaml that is not UTF-8, and long flat junctions that must run in linear time.
//! Each is driven through the binary, as a user meets it, with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cohort::spec::{MAX_NESTING, init_files, parse_query};

use crate::common::cohort_bin;

/// What one run of the binary did.
pub struct Outcome {
    /// The exit code; `None` when a signal ended it (an abort, a stack overflow).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The size of stderr in bytes.
    pub stderr_bytes: u64,
    pub elapsed: Duration,
}

/// Runs `cohort <args>`, killed after `limit` (a hang fails the test). Output goes to files
/// so that a flood cannot exhaust memory; at most 1 MB of each is read back.
pub fn cohort(args: &[&str], limit: Duration) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (tmp.path().join("out"), tmp.path().join("err"));
    let started = Instant::now();
    let mut child = Command::new(cohort_bin())
        .args(args)
        .env("CI", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = read_head(&err_path);
            panic!(
                "cohort {} did not finish in {limit:?}; stderr starts:\n{}",
                shown_args(args),
                clip(&err, 2_000)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        code: status.code(),
        stdout: read_head(&out_path),
        stderr: read_head(&err_path),
        stderr_bytes: std::fs::metadata(&err_path).unwrap().len(),
        elapsed: started.elapsed(),
    }
}

fn read_head(path: &Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let f = std::fs::File::open(path).unwrap();
    f.take(1 << 20).read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn shown_args(args: &[&str]) -> String {
    clip(&args.join(" "), 200)
}

pub fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Every `error:` of validate's output is followed by its ` --> file:line:col`.
pub fn errors_without_position(stderr: &str) -> Vec<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with("error: ") {
            continue;
        }
        let next = lines.get(i + 1).map_or("", |n| n.trim_start());
        let ok = next.strip_prefix("--> ").is_some_and(|loc| {
            let mut parts = loc.rsplitn(3, ':');
            let col = parts.next().unwrap_or("");
            let line = parts.next().unwrap_or("");
            let file = parts.next().unwrap_or("");
            !file.is_empty() && line.parse::<usize>().is_ok() && col.parse::<usize>().is_ok()
        });
        if !ok {
            out.push(l.to_string());
        }
    }
    out
}

/// Writes the starter space's definitions (no data) into `dir`.
pub fn write_starter(dir: &Path) {
    for (rel, text) in init_files() {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

/// A starter space with a little sample data, as `cohort init` writes it.
fn small_space(tmp: &Path) -> PathBuf {
    let dir = tmp.join("space");
    let o = cohort(
        &["init", dir.to_str().unwrap(), "--events", "2000"],
        Duration::from_secs(120),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    dir
}

fn validate(dir: &Path) -> Outcome {
    cohort(
        &["validate", dir.to_str().unwrap()],
        Duration::from_secs(30),
    )
}

/// Validate refuses `query` in an audience with a nesting error at a position, quickly.
fn refused_for_nesting(query: &str) {
    let tmp = tempfile::tempdir().unwrap();
    write_starter(tmp.path());
    let yaml = format!("name: Deep\nquery: \"{query}\"\n");
    std::fs::write(tmp.path().join("audiences/deep.yaml"), yaml).unwrap();
    let o = validate(tmp.path());
    assert_eq!(o.code, Some(2), "{}", clip(&o.stderr, 3_000));
    let message = format!("nesting deeper than {MAX_NESTING} levels");
    assert!(o.stderr.contains(&message), "{}", clip(&o.stderr, 3_000));
    assert!(
        o.stderr.contains("--> audiences/deep.yaml:2:"),
        "{}",
        clip(&o.stderr, 3_000)
    );
    assert!(
        errors_without_position(&o.stderr).is_empty(),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr_bytes < 20_000,
        "{} bytes of stderr",
        o.stderr_bytes
    );
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_crash() {
    // 3,000 nested parentheses, closed.
    let n = 3_000;
    refused_for_nesting(&format!(
        "{}trait('plan') = 'pro'{}",
        "(".repeat(n),
        ")".repeat(n)
    ));
    // 10,000 NOTs.
    refused_for_nesting(&format!("{}trait('vip')", "NOT ".repeat(10_000)));
    // 3,000 parentheses never closed.
    refused_for_nesting(&format!("{}trait('vip')", "(".repeat(3_000)));
    // 3,000 funnels inside one another.
    let mut q = "event('A').count() >= 1".to_string();
    for _ in 0..3_000 {
        q = format!("event('A').where({q}).count() >= 1");
    }
    refused_for_nesting(&q);
}

#[test]
fn nesting_up_to_the_limit_parses() {
    let inner = "trait('plan') = 'pro'";
    let at_limit = format!(
        "{}{inner}{}",
        "(".repeat(MAX_NESTING),
        ")".repeat(MAX_NESTING)
    );
    parse_query(&at_limit).expect("nesting at the limit parses");
    let past = format!("({at_limit})");
    let e = parse_query(&past).expect_err("one more level is refused");
    assert!(e.message.contains("nesting deeper than"), "{}", e.message);
    assert_eq!(
        e.span.start, MAX_NESTING,
        "points at the first `(` too many"
    );
    // A flat junction of any length is not nesting.
    let flat = vec![inner; 20_000].join(" AND ");
    parse_query(&flat).expect("a long AND list parses");
}

#[test]
fn thirty_thousand_unknown_destinations_print_a_bounded_report() {
    let tmp = tempfile::tempdir().unwrap();
    write_starter(tmp.path());
    let names: Vec<String> = (0..30_000).map(|i| format!("nowhere_{i}")).collect();
    let yaml = format!(
        "name: Flood\nquery: \"trait('vip')\"\ndestinations: [{}]\n",
        names.join(", ")
    );
    std::fs::write(tmp.path().join("audiences/flood.yaml"), yaml).unwrap();
    let o = validate(tmp.path());
    assert_eq!(o.code, Some(2), "{}", clip(&o.stderr, 3_000));
    assert!(o.elapsed < Duration::from_secs(20), "took {:?}", o.elapsed);
    assert!(
        o.stderr_bytes < 50_000,
        "{} bytes of stderr",
        o.stderr_bytes
    );
    assert!(
        o.stderr
            .contains("... and 29980 more error(s) in audiences/flood.yaml not shown"),
        "{}",
        clip(&o.stderr, 5_000)
    );
    assert!(
        o.stderr.contains("30000 error(s)"),
        "{}",
        clip(&o.stderr, 5_000)
    );
    // The 120 KB line is shown as a window around each error, cut with `…`.
    assert!(o.stderr.contains('…'), "{}", clip(&o.stderr, 3_000));
    assert!(
        o.stderr.lines().all(|l| l.chars().count() < 400),
        "a long line was printed whole"
    );
    assert!(errors_without_position(&o.stderr).is_empty());
}

#[test]
fn a_space_yaml_that_is_not_utf8_has_a_position_and_hides_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_starter(tmp.path());
    let mut bytes = std::fs::read(tmp.path().join("space.yaml")).unwrap();
    let at = bytes.windows(5).position(|w| w == b"store").unwrap();
    bytes[at + 2] = 0xFF;
    std::fs::write(tmp.path().join("space.yaml"), &bytes).unwrap();
    // Other files' problems are reported in the same run: an unknown key, a query error, a
    // SQL error and a file that is not UTF-8 either.
    std::fs::write(
        tmp.path().join("traits/orders_90d.yaml"),
        "query: \"event('Order Completed').count()\"\ncolour: red\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("audiences/broken.yaml"),
        "name: Broken\nquery: \"trait('x') >\"\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("queries/lifetime_orders.sql"),
        "SELECT user_id, count(* AS n FROM web GROUP BY user_id\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("traits/latin1.yaml"),
        b"query: \"event('Caf\xe9').count()\"\n",
    )
    .unwrap();
    let o = validate(tmp.path());
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    let t = &o.stderr;
    let line = 1 + bytes[..at].iter().filter(|b| **b == b'\n').count();
    let col = at + 3
        - bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
    for expected in [
        "error: space.yaml is not UTF-8 text: invalid byte 0xFF".to_string(),
        format!("--> space.yaml:{line}:{col}"),
        "error: traits/latin1.yaml is not UTF-8 text: invalid byte 0xE9".into(),
        "--> traits/latin1.yaml:1:19".into(),
        "unknown key `colour`".into(),
        "--> audiences/broken.yaml:2:".into(),
        "--> queries/lifetime_orders.sql:1:".into(),
    ] {
        assert!(t.contains(&expected), "`{expected}` not in\n{t}");
    }
    assert!(errors_without_position(t).is_empty(), "{t}");
}

#[test]
fn an_unknown_key_does_not_hide_query_and_sql_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write_starter(tmp.path());
    // An unknown key and a query error in the same file, a query error in another.
    std::fs::write(
        tmp.path().join("audiences/big_spenders.yaml"),
        "name: Big Spenders\nquery: \"trait('total_revenue') >> 500\"\nsize: large\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("traits/total_revenue.yaml"),
        "query: \"event('Order Completed').sum(property('revenue')\"\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("queries/lifetime_orders.sql"),
        "DELETE FROM web\n",
    )
    .unwrap();
    let o = validate(tmp.path());
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    let t = &o.stderr;
    for expected in [
        "unknown key `size`",
        "--> audiences/big_spenders.yaml:2:",
        "--> traits/total_revenue.yaml:1:",
        "SQL trait `lifetime_orders` is refused",
    ] {
        assert!(t.contains(expected), "`{expected}` not in\n{t}");
    }
    assert!(errors_without_position(t).is_empty(), "{t}");
}

/// Writes `query` as an audience and `trait_query` as a computed trait into the small space,
/// checks that validate accepts both, and that a run completes.
fn validates_and_runs(dir: &Path, query: &str, trait_query: &str) {
    std::fs::write(
        dir.join("audiences/long_and.yaml"),
        format!("name: Long\nquery: \"{query}\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("traits/long_or.yaml"),
        format!("query: \"{trait_query}\"\n"),
    )
    .unwrap();
    let v = validate(dir);
    assert_eq!(v.code, Some(0), "{}", clip(&v.stderr, 3_000));
    let r = cohort(
        &[
            "run",
            dir.to_str().unwrap(),
            "--as-of",
            "2026-11-01",
            "--memory-limit",
            "512MB",
        ],
        Duration::from_secs(240),
    );
    assert_eq!(r.code, Some(0), "{}", clip(&r.stderr, 3_000));
    assert!(r.stdout.contains("published") || r.stderr.contains("published"));
}

#[test]
fn long_flat_junctions_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = small_space(tmp.path());
    // 10,000 ANDed conditions, a `where` with 5,000 ORs, and a SQL trait with 5,000 ORs.
    let sql_or: Vec<String> = (0..5_000).map(|i| format!("event = 'E{i}'")).collect();
    std::fs::write(
        dir.join("queries/many_events.sql"),
        format!(
            "SELECT user_id, count(*) AS many_events FROM web WHERE user_id IS NOT NULL AND ({}) GROUP BY user_id\n",
            sql_or.join(" OR ")
        ),
    )
    .unwrap();
    let and: Vec<String> = (0..10_000)
        .map(|i| format!("trait('total_revenue') > {}", i % 97 - 50))
        .collect();
    let or: Vec<String> = (0..5_000)
        .map(|i| format!("property('revenue') = {i}"))
        .collect();
    validates_and_runs(
        &dir,
        &and.join(" AND "),
        &format!(
            "event('Order Completed').where({}).count()",
            or.join(" OR ")
        ),
    );
}

#[test]
fn deep_sql_and_deep_yaml_are_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    write_starter(tmp.path());
    // sqlparser's own recursion limit holds for SQL traits.
    let n = 3_000;
    std::fs::write(
        tmp.path().join("queries/lifetime_orders.sql"),
        format!(
            "SELECT user_id, count(*) AS lifetime_orders FROM web WHERE {}1 = 1{} GROUP BY user_id\n",
            "(".repeat(n),
            ")".repeat(n)
        ),
    )
    .unwrap();
    // YAML nested in flow style and in block style, far past any real file.
    std::fs::write(
        tmp.path().join("audiences/flow.yaml"),
        format!(
            "name: Flow\nquery: \"trait('vip')\"\ndescription: {}{}\n",
            "[".repeat(1_000),
            "]".repeat(1_000)
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("audiences/block.yaml"),
        format!(
            "name: Block\nquery: \"trait('vip')\"\ndescription:\n  {}x\n",
            "- ".repeat(20_000)
        ),
    )
    .unwrap();
    let o = validate(tmp.path());
    assert_eq!(o.code, Some(2), "{}", clip(&o.stderr, 3_000));
    for expected in [
        "--> queries/lifetime_orders.sql:",
        "--> audiences/flow.yaml:",
        "--> audiences/block.yaml:",
    ] {
        assert!(
            o.stderr.contains(expected),
            "`{expected}` not in\n{}",
            clip(&o.stderr, 3_000)
        );
    }
    assert!(
        errors_without_position(&o.stderr).is_empty(),
        "{}",
        o.stderr
    );
}
