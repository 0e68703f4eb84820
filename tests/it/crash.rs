//! `kill -9` at several moments of a run (before and during publishing): the last good run
//! stays intact and readable, and the next run takes over the dead run's lease and succeeds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cohort::spec::Preset;
use cohort::store::{delta, manifest, objects};
use datafusion::prelude::SessionContext;

use crate::common::{cohort_bin, gen_end, generate, write_space};

fn run_cli(dir: &Path) {
    let out = Command::new(cohort_bin())
        .args(["run", dir.to_str().unwrap(), "--as-of"])
        .arg(gen_end().to_rfc3339())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts a run that pauses between publish steps, and kills it `delay` after the publish
/// stage starts (or, with `None`, 300 ms after it starts at all).
fn run_and_kill(dir: &Path, delay: Option<Duration>) {
    let mut child = Command::new(cohort_bin())
        .args(["run", dir.to_str().unwrap(), "--as-of"])
        .arg(gen_end().to_rfc3339())
        .env("COHORT_TEST_PUBLISH_PAUSE_MS", "800")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("stage publish") {
                let _ = tx.send(());
            }
        }
    });
    match delay {
        None => std::thread::sleep(Duration::from_millis(300)),
        Some(d) => {
            rx.recv_timeout(Duration::from_secs(120))
                .expect("the run reached publishing");
            std::thread::sleep(d);
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The published state is whole: every table opens at the manifest's version, the runs table
/// at it ends with the manifest's run, and the rows of event_errors and ingested_files at
/// those versions belong to runs that succeeded.
async fn assert_intact(out: &objects::Location) -> String {
    let m = manifest::read(out).await.unwrap().expect("a manifest");
    let ctx = SessionContext::new();
    for (t, v) in &m.tables {
        ctx.register_table(
            t.as_str(),
            delta::provider(&out.child(t), *v).await.unwrap(),
        )
        .unwrap();
    }
    let q = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&b)
                .unwrap()
                .to_string()
        }
    };
    let last = q("SELECT run_id, status FROM runs ORDER BY started_at DESC LIMIT 1").await;
    assert!(
        last.contains(&m.run_id),
        "manifest run {} vs runs {last}",
        m.run_id
    );
    assert!(last.contains("succeeded"), "{last}");
    // Rows set aside belong to runs that succeeded (an incremental run keeps the rows of the
    // files earlier runs read), as do the files of the event history.
    for table in ["event_errors", "ingested_files"] {
        let sql = format!(
            "SELECT count(*) AS orphans FROM {table} t WHERE t.run_id NOT IN \
             (SELECT run_id FROM runs WHERE status = 'succeeded')"
        );
        let b = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string();
        assert!(text.contains("| 0 "), "{table}: {text}");
    }
    m.run_id
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_any_moment_leaves_the_last_good_run() {
    let tmp = tempfile::tempdir().unwrap();
    generate(Preset::Events, 30_000, 9, &tmp.path().join("data")).await;
    write_space(
        tmp.path(),
        "crashy",
        &[("web", "events", "./data")],
        "./out",
    );
    let out = objects::open_raw(tmp.path(), "./out")
        .unwrap()
        .child("crashy");

    run_cli(tmp.path());
    let mut good = assert_intact(&out).await;

    // Before publishing, right after it starts, after the first commit, after the second
    // commit, and around the manifest flip.
    let points = [None, Some(0), Some(400), Some(1000), Some(1500), Some(2000)];
    for p in points {
        let started = Instant::now();
        run_and_kill(tmp.path(), p.map(Duration::from_millis));
        let now = assert_intact(&out).await;
        if now != good {
            // The kill came after the manifest flip: the new run is whole, which is fine.
            assert!(
                p.unwrap_or(0) >= 1000,
                "a new run became visible too early ({p:?})"
            );
        }
        // The dead run's lease does not block the next run.
        run_cli(tmp.path());
        good = assert_intact(&out).await;
        assert!(started.elapsed() < Duration::from_secs(120));
    }
}
