//! `cohort run --on spark`: a run whose stages run on Apache Spark. The space is compiled into
//! its Spark SQL script (what `cohort compile --dialect spark --script` prints), which Cohort's
//! driver (`queries/script/spark_run.py`) runs statement by statement in a Spark session
//! started by `spark-submit` (or by a Python with PySpark). The driver writes the published
//! tables as Parquet into a staging folder; [`super::publish_staged`] then publishes them as
//! this run's, under the same lease, record and manifest as a local run, so the Profile API,
//! the SQL endpoint and the exports read them unchanged.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::lifecycle::{RunReport, new_record, new_run_id};
use super::output::output_location;
use super::record::RunStatus;
use super::runs_table::record_failure;
use crate::error::{EngineError, EngineResult};
use crate::script::unparse::SqlDialect;
use crate::spec::{Preset, Space};
use crate::store::{lease, objects};

/// Cohort's driver for Spark scripts.
pub const DRIVER: &str = include_str!("../../queries/script/spark_run.py");

/// How to run a space on Spark.
#[derive(Clone, Debug, Default)]
pub struct SparkOptions {
    /// The run's as-of; default: now.
    pub as_of: Option<DateTime<Utc>>,
    /// The `spark-submit` (or a Python with PySpark) to start; default: see [`launcher`].
    pub submit: Option<PathBuf>,
    /// The Spark master; default `local[*]`.
    pub master: Option<String>,
    /// How long to wait for another run of the space.
    pub lease_wait: Duration,
    /// What started the run.
    pub trigger: Option<String>,
}

/// What starts the driver.
#[derive(Clone, Debug, PartialEq)]
pub enum Launcher {
    /// `spark-submit driver.py ...`
    Submit(PathBuf),
    /// `python driver.py ...` (PySpark starts its own Spark).
    Python(PathBuf),
}

/// The first of: `explicit` (a Python when its name says so), `spark-submit` on the PATH,
/// `$SPARK_HOME/bin/spark-submit`, `$PYSPARK_PYTHON` or `python3` when it imports pyspark.
pub fn launcher(explicit: Option<&Path>) -> Result<Launcher, String> {
    if let Some(p) = explicit {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string());
        return Ok(match name.is_some_and(|n| n.starts_with("python")) {
            true => Launcher::Python(p.to_path_buf()),
            false => Launcher::Submit(p.to_path_buf()),
        });
    }
    if let Some(p) = on_path("spark-submit") {
        return Ok(Launcher::Submit(p));
    }
    if let Some(home) = std::env::var_os("SPARK_HOME") {
        let p = Path::new(&home).join("bin/spark-submit");
        if p.is_file() {
            return Ok(Launcher::Submit(p));
        }
    }
    let pythons = std::env::var_os("PYSPARK_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(on_path("python3"));
    for py in pythons {
        let has = Command::new(&py)
            .args(["-c", "import pyspark"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if has.is_ok_and(|s| s.success()) {
            return Ok(Launcher::Python(py));
        }
    }
    Err(
        "found no Spark: no spark-submit on the PATH or in $SPARK_HOME/bin, and no python3 \
         (or $PYSPARK_PYTHON) that imports pyspark (`pip install pyspark`); or name one with \
         --spark-submit"
            .into(),
    )
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What the driver is given: the files it runs and the folders it reads and writes.
pub struct Job<'a> {
    /// `spark_run.py`.
    pub driver: &'a Path,
    /// The space's Spark SQL script.
    pub script: &'a Path,
    /// Each source's name and folder of Parquet files.
    pub sources: &'a [(String, PathBuf)],
    /// Where the driver writes `tables`, one Parquet folder each.
    pub staged: &'a Path,
    pub tables: &'a [&'a str],
    /// The session's `spark.sql.warehouse.dir` (the script's stage tables).
    pub warehouse: &'a Path,
}

/// The command that starts `job` with `launcher` on `master`.
pub fn command(launcher: &Launcher, master: &str, job: &Job<'_>) -> Command {
    let mut cmd = match launcher {
        Launcher::Submit(p) => {
            let mut c = Command::new(p);
            // PySpark's spark-submit finds Spark through the `python3` on the PATH: the one
            // beside it (a virtualenv's) comes first.
            if let Some(dir) = p.parent().filter(|d| d.join("python3").is_file())
                && let Some(path) = std::env::var_os("PATH")
            {
                let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path));
                if let Ok(joined) = std::env::join_paths(dirs) {
                    c.env("PATH", joined);
                }
            }
            c.arg("--master").arg(master).arg(job.driver);
            c
        }
        Launcher::Python(p) => {
            let mut c = Command::new(p);
            c.arg(job.driver).arg("--master").arg(master);
            c
        }
    };
    cmd.arg(job.script);
    for (name, dir) in job.sources {
        cmd.arg("--source").arg(format!("{name}={}", dir.display()));
    }
    cmd.arg("--out")
        .arg(job.staged)
        .arg("--tables")
        .arg(job.tables.join(","))
        .arg("--warehouse")
        .arg(job.warehouse);
    cmd
}

/// The folders of the space's sources, which Spark reads as Parquet: `events`-preset sources
/// on this machine's file system.
fn source_dirs(space: &Space) -> EngineResult<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for s in &space.sources {
        if s.preset != Preset::Events {
            return Err(EngineError::InvalidInput(format!(
                "--on spark reads sources of the `events` preset; `{}` uses `{}`",
                s.name, s.preset
            )));
        }
        let loc = objects::open_raw(&space.root, &s.url)?;
        let Some(dir) = loc.local_dir() else {
            return Err(EngineError::InvalidInput(format!(
                "--on spark reads sources on this machine's disk; `{}` is at {} (run the \
                 script on the cluster yourself: see docs/warehouses.md)",
                s.name, s.url
            )));
        };
        out.push((s.name.clone(), dir));
    }
    Ok(out)
}

/// Runs `space` on Spark and publishes what it computed; `say` gets each line of progress.
pub async fn run_on_spark(
    space: &Space,
    opts: &SparkOptions,
    say: &(dyn Fn(&str) + Sync),
) -> EngineResult<RunReport> {
    let started_at = Utc::now();
    let run_id = new_run_id(started_at);
    let out = output_location(space)?;
    let lease = lease::acquire(&out, &run_id, opts.lease_wait).await?;
    let run_opts = super::RunOptions {
        as_of: Some(opts.as_of.unwrap_or(started_at)),
        trigger: opts.trigger.clone(),
        full_rebuild: true,
        ..Default::default()
    };
    let mut rec = new_record(space, &run_opts, &run_id, started_at);
    let result = async {
        let work = tempfile::tempdir().map_err(crate::error::StoreError::from)?;
        let t = Instant::now();
        let script = super::script::script(space, rec.as_of, SqlDialect::Spark).await?;
        rec.stage_timings
            .push(("compile".into(), t.elapsed().as_millis() as u64));
        let (script_path, driver) = (
            work.path().join("space.sql"),
            work.path().join("spark_run.py"),
        );
        std::fs::write(&script_path, script).map_err(crate::error::StoreError::from)?;
        std::fs::write(&driver, DRIVER).map_err(crate::error::StoreError::from)?;
        let staged = work.path().join("staged");
        let tables = super::publish_staged::staged_tables();
        let launcher = launcher(opts.submit.as_deref()).map_err(EngineError::InvalidInput)?;
        let master = opts.master.as_deref().unwrap_or("local[*]");
        let sources = source_dirs(space)?;
        let warehouse = work.path().join("warehouse");
        let job = Job {
            driver: &driver,
            script: &script_path,
            sources: &sources,
            staged: &staged,
            tables: &tables,
            warehouse: &warehouse,
        };
        let mut cmd = command(&launcher, master, &job);
        cmd.current_dir(work.path());
        say(&format!("spark: {}", shown(&cmd)));
        let t = Instant::now();
        let events = std::sync::atomic::AtomicI64::new(0);
        let heard = |line: &str| {
            if let Some(n) = line
                .strip_prefix("events ")
                .and_then(|n| n.trim().parse().ok())
            {
                events.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            say(&format!("spark: {line}"));
        };
        submit(cmd, &heard)?;
        rec.events = events.load(std::sync::atomic::Ordering::Relaxed);
        rec.stage_timings
            .push(("spark".into(), t.elapsed().as_millis() as u64));
        super::publish_staged::publish(space, &out, &staged, &mut rec).await
    }
    .await;
    let outcome = match result {
        Ok(manifest) => Ok(RunReport {
            record: rec.clone(),
            output: out.url.to_string(),
            manifest,
            vacuum: super::retention::after_publish(space, &out).await,
        }),
        Err(e) => {
            rec.status = RunStatus::Failed;
            rec.finished_at = Utc::now();
            rec.message = Some(e.to_string());
            if let Err(e2) = record_failure(&out, &[], &rec).await {
                tracing::warn!("could not record the failed run: {e2}");
            }
            Err(e)
        }
    };
    lease.release().await?;
    outcome
}

/// `cmd` as a shell would show it.
fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the driver, passing each line it prints to `say`; its error output is kept for the
/// error when it fails.
fn submit(mut cmd: Command, say: &(dyn Fn(&str) + Sync)) -> EngineResult<()> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| EngineError::InvalidInput(format!("cannot start {}: {e}", shown(&cmd))))?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    // The driver's lines arrive while Spark works: read on this thread, off the runtime.
    let status = tokio::task::block_in_place(|| {
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                say(&line);
            }
        }
        child.wait()
    })
    .map_err(|e| EngineError::Internal(format!("waiting for Spark: {e}")))?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = errors.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(EngineError::Stopped(format!(
            "Spark failed ({status}); the last good run stays published:\n{}",
            tail.join("\n")
        )));
    }
    Ok(())
}
