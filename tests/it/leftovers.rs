//! What runs leave behind, driven through the binary: scratch folders of dead runs are cleared
//! by the next run; killed and failed runs get a `runs` row; SQL traits and runs stop at their
//! timeouts; old Delta versions go with `cohort vacuum` and the space's retention.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cohort::spec::Preset;
use cohort::store::{delta, manifest, objects};
use datafusion::prelude::SessionContext;

use crate::common::{cohort_bin, gen_end, generate, load, write_space};

/// A pid no process has here: beyond the kernel's largest pid.
const DEAD_PID: u32 = 4_194_304 + 23;

/// A space `name` over `events` generated events in `dir`, output in `dir/out`, and the
/// extra space.yaml lines `extra`.
async fn space(dir: &Path, name: &str, events: u64, extra: &str) -> objects::Location {
    generate(Preset::Events, events, 5, &dir.join("data")).await;
    write_space(dir, name, &[("web", "events", "./data")], "./out");
    if !extra.is_empty() {
        let mut y = std::fs::read_to_string(dir.join("space.yaml")).unwrap();
        y.push_str(extra);
        std::fs::write(dir.join("space.yaml"), y).unwrap();
    }
    objects::open_raw(dir, "./out").unwrap().child(name)
}

fn run_args(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(cohort_bin());
    c.args(["run", dir.to_str().unwrap(), "--as-of"])
        .arg(gen_end().to_rfc3339())
        .args(extra);
    c
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "cohort failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "cohort should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Scratch folders in `parent`.
fn scratch_dirs(parent: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(parent)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("cohort-run-"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Starts `run` with its stderr piped and reads it up to and with the first line that
/// contains `needle` (a stage's progress line); fails when the run ends first. The rest of
/// stderr is left to the caller.
fn spawn_until(run: &mut Command, needle: &str) -> (Child, BufReader<ChildStderr>) {
    let mut child = run
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.contains(needle) {
            return (child, stderr);
        }
        line.clear();
    }
    let status = child.wait().unwrap();
    panic!("the run ended ({status}) before `{needle}`");
}

/// (run_id, status, message) of every run, newest first.
async fn runs(dir: &Path) -> Vec<(String, String, String)> {
    cohort::read::history::runs(&load(dir).await)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.run_id, r.status, r.message.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_is_recorded_and_its_scratch_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "killed", 20_000, "").await;
    let spill = dir.join("spill");
    std::fs::create_dir_all(&spill).unwrap();

    // Left by a run that was killed earlier: its process is gone.
    let dead = spill.join(format!("cohort-run-{DEAD_PID}-old000"));
    std::fs::create_dir_all(dead.join("classified")).unwrap();
    std::fs::write(dead.join("classified/part-0.parquet"), vec![7u8; 100_000]).unwrap();
    std::fs::write(dead.join(".lock"), "").unwrap();
    // The scratch folder of another process that is alive.
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let live = spill.join(format!("cohort-run-{}-live00", sleeper.id()));
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join(".lock"), "").unwrap();

    // A run killed with SIGKILL as it starts publishing.
    let mut run = run_args(dir, &["--spill-dir", spill.to_str().unwrap()]);
    run.env("COHORT_TEST_PUBLISH_PAUSE_MS", "2000");
    let (mut child, _stderr) = spawn_until(&mut run, "stage publish");
    let killed_pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();

    let left = scratch_dirs(&spill);
    assert!(
        !dead.exists(),
        "the dead scratch folder is still there: {left:?}"
    );
    assert!(live.exists());
    assert!(
        left.iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("cohort-run-{killed_pid}-"))),
        "the killed run left no scratch folder? {left:?}"
    );
    let markers: Vec<PathBuf> = std::fs::read_dir(out.local_dir().unwrap().join("_cohort/started"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(markers.len(), 1, "{markers:?}");
    let killed_id = markers[0]
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    // The next run clears the killed run's scratch, records it, and removes its own.
    ok(run_args(dir, &["--spill-dir", spill.to_str().unwrap()])
        .output()
        .unwrap());
    assert_eq!(scratch_dirs(&spill), vec![live.clone()]);
    let rows = runs(dir).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].1, "succeeded");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        (killed_id.as_str(), "abandoned")
    );
    assert!(rows[1].2.contains("kill -9"), "{}", rows[1].2);
    assert!(rows[1].2.contains(&format!("noticed by run {}", rows[0].0)));
    assert_eq!(
        std::fs::read_dir(out.local_dir().unwrap().join("_cohort/started"))
            .unwrap()
            .count(),
        0
    );
    // `cohort runs` shows it.
    let listed = ok(Command::new(cohort_bin())
        .args(["runs", dir.to_str().unwrap()])
        .output()
        .unwrap());
    assert!(listed.contains("abandoned"), "{listed}");

    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_fails_writing_its_scratch_records_why_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "full", 20_000, "").await;
    let spill = dir.join("spill");
    ok(run_args(dir, &[]).output().unwrap());
    let good = manifest::read(&out).await.unwrap().unwrap();

    // A file-size limit makes every write past it fail (EFBIG), as a full disk would: the
    // scratch files are far larger than the limit; the one-row `runs` commit fits under it.
    // `--full`, because a run that extends the history writes only the rows it adds to
    // scratch (none here).
    let cohort = cohort_bin();
    let mut inner = format!(
        "trap '' XFSZ; ulimit -f 400; exec '{}' run '{}' --full --as-of {} --spill-dir '{}'",
        cohort.display(),
        dir.display(),
        gen_end().to_rfc3339(),
        spill.display()
    );
    inner.push('\n');
    let err = failed(Command::new("sh").arg("-c").arg(&inner).output().unwrap());
    assert!(err.contains("error:"), "{err}");
    assert_eq!(scratch_dirs(&spill), Vec::<PathBuf>::new(), "{err}");

    let rows = runs(dir).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].1, "failed", "{rows:?}");
    assert!(
        rows[0].2.to_lowercase().contains("too large"),
        "the record names the error: {}",
        rows[0].2
    );
    // Every other table is still the good run's.
    let now = manifest::read(&out).await.unwrap().unwrap();
    assert_eq!(now.run_id, good.run_id);
    for (t, v) in &good.tables {
        if t != "runs" {
            assert_eq!(now.tables.get(t), Some(v), "{t}");
        }
    }
}

const ENDLESS: &str = "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r)\n\
                       SELECT 'u-endless' AS user_id, max(n) AS deepest FROM r\n";

#[tokio::test(flavor = "multi_thread")]
async fn endless_sql_traits_stop_at_their_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "endless", 3_000, "").await;
    ok(run_args(dir, &[]).output().unwrap());
    let good = manifest::read(&out).await.unwrap().unwrap();

    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::write(queries.join("endless.sql"), ENDLESS).unwrap();
    std::fs::write(queries.join("endless.yaml"), "timeout: 2s\n").unwrap();
    let t = Instant::now();
    let err = failed(run_args(dir, &[]).output().unwrap());
    assert!(
        err.contains("SQL trait `endless` exceeded its 2s timeout (queries/endless.yaml)"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());

    // The space's default, when the sidecar sets none.
    std::fs::remove_file(queries.join("endless.yaml")).unwrap();
    let mut y = std::fs::read_to_string(dir.join("space.yaml")).unwrap();
    y.push_str("sql_trait_timeout: 1s\n");
    std::fs::write(dir.join("space.yaml"), &y).unwrap();
    let err = failed(run_args(dir, &[]).output().unwrap());
    assert!(
        err.contains(
            "SQL trait `endless` exceeded its 1s timeout (sql_trait_timeout in space.yaml)"
        ),
        "{err}"
    );

    // The run's own timeout.
    std::fs::write(
        dir.join("space.yaml"),
        y.replace("sql_trait_timeout: 1s", "sql_trait_timeout: 1h"),
    )
    .unwrap();
    let t = Instant::now();
    let err = failed(run_args(dir, &["--timeout", "3s"]).output().unwrap());
    assert!(
        err.contains("the run exceeded its 3s timeout (--timeout)"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());

    // Three failed rows, newest first, and the good run still published.
    let rows = runs(dir).await;
    let statuses: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(statuses, ["failed", "failed", "failed", "succeeded"]);
    assert!(
        rows[2].2.contains("exceeded its 2s timeout"),
        "{}",
        rows[2].2
    );
    let now = manifest::read(&out).await.unwrap().unwrap();
    assert_eq!(now.run_id, good.run_id);
    assert_eq!(now.tables.get("profiles"), good.tables.get("profiles"));
}

/// Data files (not the Delta log) under `table`.
fn data_files(table: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "_delta_log") {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(table, &mut v);
    v.sort();
    v
}

/// Rows of every published table at the manifest's version.
async fn published_counts(out: &objects::Location) -> Vec<(String, usize)> {
    let m = manifest::read(out).await.unwrap().unwrap();
    let ctx = SessionContext::new();
    let mut counts = Vec::new();
    for (t, v) in &m.tables {
        let df = ctx
            .read_table(delta::provider(&out.child(t), *v).await.unwrap())
            .unwrap();
        let rows: usize = df
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        counts.push((t.clone(), rows));
    }
    counts
}

/// `cohort vacuum .` with `args`, run in the space's folder as a user does; what it printed.
fn vacuum(dir: &Path, args: &[&str]) -> String {
    let mut c = Command::new(cohort_bin());
    c.current_dir(dir).args(["vacuum", "."]).args(args);
    ok(c.output().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn vacuum_removes_old_versions_and_keeps_the_published_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "vac", 3_000, "retention: off\n").await;
    for _ in 0..3 {
        ok(run_args(dir, &[]).output().unwrap());
    }
    let profiles = out.local_dir().unwrap().join("profiles");
    let before = data_files(&profiles);
    let counts = published_counts(&out).await;

    // Everything is within a week: nothing goes.
    let said = vacuum(dir, &[]);
    assert!(said.contains("removed 0 file(s)"), "{said}");
    // A dry run lists what would go and removes nothing.
    let said = vacuum(dir, &["--retain", "0s", "--dry-run"]);
    assert!(said.contains("would remove"), "{said}");
    assert!(!said.contains("would remove 0 file(s)"), "{said}");
    assert_eq!(data_files(&profiles), before);

    // A commit no manifest names (a run killed mid-publish): the published version must stay.
    let m = manifest::read(&out).await.unwrap().unwrap();
    let stray = {
        let ctx = SessionContext::new();
        ctx.read_table(
            delta::provider(&out.child("runs"), m.tables["runs"])
                .await
                .unwrap(),
        )
        .unwrap()
        .collect()
        .await
        .unwrap()
    };
    let latest = delta::overwrite_batches(&out.child("runs"), stray)
        .await
        .unwrap();
    assert!(latest > m.tables["runs"]);

    let said = vacuum(dir, &["--retain", "0s"]);
    assert!(said.contains("removed"), "{said}");
    let after = data_files(&profiles);
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after.iter().all(|f| before.contains(f)));
    // Every published table still reads, with the same rows.
    assert_eq!(published_counts(&out).await, counts);
    // And runs go on.
    ok(run_args(dir, &[]).output().unwrap());
    assert_eq!(runs(dir).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn vacuum_removes_the_kept_rows_of_a_removed_sql_trait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "rows", 3_000, "retention: off\n").await;
    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    // One GROUP BY over an identifier column: its rows are kept between runs.
    let sql = "SELECT user_id, count(*) AS gone_events FROM events \
               WHERE user_id IS NOT NULL GROUP BY user_id";
    for key in ["gone", "stays"] {
        let sql = sql.replace("gone_events", &format!("{key}_events"));
        std::fs::write(queries.join(format!("{key}.sql")), sql).unwrap();
    }
    ok(run_args(dir, &[]).output().unwrap());
    let rows = out.local_dir().unwrap().join("sql_trait_rows");
    assert!(!data_files(&rows.join("gone")).is_empty());
    std::fs::remove_file(queries.join("gone.sql")).unwrap();
    ok(run_args(dir, &[]).output().unwrap());
    let stays = data_files(&rows.join("stays"));
    // The first run's manifest is within the window: its rows stay.
    vacuum(dir, &[]);
    assert!(!data_files(&rows.join("gone")).is_empty());
    // Outside it, no manifest names them: every file goes, the other trait's stay.
    let said = vacuum(dir, &["--retain", "0s"]);
    assert!(said.contains("sql_trait_rows/gone"), "{said}");
    assert_eq!(data_files(&rows.join("gone")), Vec::<PathBuf>::new());
    let left = data_files(&rows.join("stays"));
    assert!(!left.is_empty() && left.iter().all(|f| stays.contains(f)));
    // And runs go on, with the trait back.
    std::fs::write(queries.join("gone.sql"), sql).unwrap();
    ok(run_args(dir, &[]).output().unwrap());
    assert!(!data_files(&rows.join("gone")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_in_space_yaml_applies_after_each_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "keep_none", 3_000, "retention: 0s\n").await;
    ok(run_args(dir, &[]).output().unwrap());
    let profiles = out.local_dir().unwrap().join("profiles");
    let first = data_files(&profiles);
    let said = ok(run_args(dir, &[]).output().unwrap());
    assert!(said.contains("retention (0s): removed"), "{said}");
    let second = data_files(&profiles);
    assert!(
        first.iter().all(|f| !second.contains(f)),
        "the first run's files are gone: {first:?} / {second:?}"
    );
    let m = manifest::read(&out).await.unwrap().unwrap();
    assert_eq!(published_counts(&out).await.len(), m.tables.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_a_run_records_it_and_removes_its_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    space(dir, "interrupted", 3_000, "").await;
    let queries = dir.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::write(queries.join("endless.sql"), ENDLESS).unwrap();
    let spill = dir.join("spill");
    let mut run = run_args(dir, &["--spill-dir", spill.to_str().unwrap()]);
    let (mut child, mut stderr) = spawn_until(&mut run, "stage traits");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(scratch_dirs(&spill).len(), 1);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(rest.contains("interrupted (Ctrl-C)"), "{rest}");
    assert_eq!(scratch_dirs(&spill), Vec::<PathBuf>::new());
    let rows = runs(dir).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1, "failed");
    assert!(rows[0].2.contains("interrupted"), "{}", rows[0].2);
}

/// The folders of `run`'s scratch folder (the tables it holds there).
fn scratch_tables(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Under a memory limit that puts the events in more than one bucket, a full run joins the
/// events with their profiles once: the published `events` rows are in scratch before
/// publishing starts and `profile_events` has no folder of its own (the traits stage read it
/// from those rows), and once `events` is written the history's and the joined rows' scratch
/// copies are gone (disk that `identity_occurrences` needs at 100 M events). Driven as a user
/// would: relative paths, from the space's folder.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_run_under_a_limit_joins_events_once_and_frees_their_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = space(dir, "shared", 300_000, "").await;
    std::fs::create_dir_all(dir.join("spill")).unwrap();
    let mut run = Command::new(cohort_bin());
    run.current_dir(dir)
        .args(["run", ".", "--as-of", &gen_end().to_rfc3339()])
        .args(["--memory-limit", "160MB", "--spill-dir", "spill"])
        .env("COHORT_TEST_PUBLISH_PAUSE_MS", "1500");
    let (mut child, mut stderr) = spawn_until(&mut run, "stage publish");
    let runs_now = scratch_dirs(&dir.join("spill"));
    assert_eq!(runs_now.len(), 1, "{runs_now:?}");
    let scratch = runs_now[0].clone();
    let before = scratch_tables(&scratch);
    for t in ["events", "event_history"] {
        assert!(
            before.iter().any(|s| s == t),
            "{t} is not in scratch as publishing starts: {before:?}"
        );
    }
    // `profile_events` was read from the published rows, not joined into its own folder.
    assert!(
        !before.iter().any(|s| s == "profile_events"),
        "the events were joined with their profiles twice: {before:?}"
    );
    // The rest of stderr, so the run never blocks on a full pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        rest
    });
    // `ingested_files` is written after `events` and `identity_occurrences`; the run pauses
    // after it.
    let log = out.local_dir().unwrap().join("ingested_files/_delta_log");
    let started = Instant::now();
    while !log.is_dir() || std::fs::read_dir(&log).unwrap().next().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "ingested_files never written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = scratch_tables(&scratch);
    assert!(scratch.is_dir(), "the run's scratch is still there");
    for t in [
        "events",
        "event_history",
        "profile_events",
        "audience_events",
    ] {
        assert!(
            !after.iter().any(|s| s == t),
            "{t} is still in scratch after `events` was written: {after:?}"
        );
    }
    let status = child.wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(status.success(), "{rest}");
    assert_eq!(scratch_dirs(&dir.join("spill")), Vec::<PathBuf>::new());
}
