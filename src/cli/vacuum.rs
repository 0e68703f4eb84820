//! `cohort vacuum`: applies a space's retention now, and the report of what retention removed
//! (also printed after a run that applied it).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::run::retention::vacuum_space;
use crate::spec::format_duration;
use crate::store::retention::VacuumReport;

#[derive(Args, Debug)]
pub(super) struct VacuumArgs {
    /// The space folder.
    dir: PathBuf,
    /// Keep the table versions that manifests of this long ago named (e.g. 7d, 12h, 0s);
    /// default: the space's `retention`, else 7d. The current run's tables are always kept.
    #[arg(long)]
    retain: Option<String>,
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Seconds to wait for a running run of this space to finish.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

pub(super) async fn vacuum_cmd(a: VacuumArgs) -> Result<()> {
    let retain = match &a.retain {
        // Zero is allowed here: keep only what the current manifest names.
        Some(r) => Some(crate::spec::parse_duration(r).ok_or_else(|| {
            super::invalid(format!(
                "--retain: `{r}` is not a duration (try 7d, 12h or 0s)"
            ))
        })?),
        None => None,
    };
    let space = super::load_space(&a.dir).await?;
    let report = vacuum_space(&space, retain, a.dry_run, Duration::from_secs(a.wait)).await?;
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "vacuum of `{}` (keeping the versions named within {}): {verb} {} file(s), {:.1} MB",
        space.name,
        format_duration(report.retain),
        report.files(),
        report.bytes() as f64 / 1e6
    );
    for t in &report.tables {
        println!(
            "  {:<28} {:>6} file(s) {:>10.1} MB   kept versions {}",
            t.table,
            t.files.len(),
            t.bytes as f64 / 1e6,
            versions(&t.kept_versions)
        );
        if report.dry_run {
            for f in &t.files {
                println!("    {f}");
            }
        }
    }
    if report.manifests_removed > 0 && !report.dry_run {
        println!(
            "  {} manifest(s) older than the window left the history",
            report.manifests_removed
        );
    }
    Ok(())
}

/// `3, 5, 7` or `3, 4, ... 9 (7 versions)` when long.
fn versions(v: &[u64]) -> String {
    let all: Vec<String> = v.iter().map(u64::to_string).collect();
    if all.len() <= 6 {
        return all.join(", ");
    }
    format!(
        "{}, {}, ... {} ({} versions)",
        all[0],
        all[1],
        all[all.len() - 1],
        all.len()
    )
}

/// One line after a run whose retention was due.
pub(super) fn print_after_run(r: &VacuumReport) {
    if r.files() > 0 {
        println!(
            "retention ({}): removed {} file(s) of old table versions, {:.1} MB",
            format_duration(r.retain),
            r.files(),
            r.bytes() as f64 / 1e6
        );
    }
}
