//! `cohort run`: one run of a space with a progress display, Ctrl-C handling and the
//! summary of what it published; with `--on spark`, the run's stages on Spark.

use std::time::Duration;

use anyhow::Result;

use super::super::args::{RunArgs, parse_memory_limit};
use super::super::{progress, render};
use super::{invalid, validate};
use crate::run::{self, RunOptions};
use crate::spec;

fn run_options(a: &RunArgs) -> RunOptions {
    let mut opts = RunOptions {
        as_of: a.as_of,
        window_days: a.window_days,
        lease_wait: Duration::from_secs(a.wait),
        full_rebuild: a.full,
        skip_bad_files: a.skip_bad_files,
        trigger: Some("manual: cli".into()),
        timeout: a.timeout,
        ..Default::default()
    };
    opts.session.memory_limit = a.memory_limit;
    opts.session.spill_dir = a.spill_dir.clone();
    opts
}

pub(in crate::cli) async fn run_cmd(a: RunArgs) -> Result<()> {
    if a.on.is_some() {
        return on_spark(a).await;
    }
    let mut opts = run_options(&a);
    opts.interrupt = Some(on_ctrl_c());
    let space = validate(&a.dir).await?;
    if !a.select.is_empty() {
        let names = crate::run::due::parse_selection(&space, &a.select);
        opts.select = Some(names.map_err(invalid)?);
    }
    if opts.session.memory_limit.is_none()
        && let Some(m) = &space.memory_limit
    {
        opts.session.memory_limit = Some(parse_memory_limit(m).map_err(invalid)?);
    }
    let report = run_space(&space, &opts).await?;
    render::print_summary(&report);
    Ok(())
}

/// `cohort run --on spark`: the run's stages on Spark, what it prints passed through.
async fn on_spark(a: RunArgs) -> Result<()> {
    let space = validate(&a.dir).await?;
    let opts = run::on_spark::SparkOptions {
        as_of: a.as_of,
        submit: a.spark_submit.clone(),
        master: a.spark_master.clone(),
        lease_wait: Duration::from_secs(a.wait),
        trigger: Some("manual: cli, on spark".into()),
    };
    let say = |line: &str| eprintln!("{line}");
    let report = run::on_spark::run_on_spark(&space, &opts, &say).await?;
    render::print_summary(&report);
    Ok(())
}

/// Ctrl-C stops a run before it publishes (it records why and removes its scratch files); a
/// second Ctrl-C quits at once.
fn on_ctrl_c() -> std::sync::Arc<tokio::sync::Notify> {
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping the run (Ctrl-C again quits at once)");
            notify.notify_one();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}

/// Runs `space` with the stage progress display.
pub(super) async fn run_space(space: &spec::Space, opts: &RunOptions) -> Result<run::RunReport> {
    let p = progress::Stages::new();
    let report = run::run(space, opts, &p).await;
    p.finish();
    Ok(report?)
}
