//! `cohort generate`: sample events in a preset's layout, to a folder or a bucket.

use anyhow::Result;

use super::super::args::GenerateArgs;
use super::super::progress;
use super::invalid;
use crate::generate::{self, GenerateOptions};
use crate::store::objects;

pub(in crate::cli) async fn generate_cmd(a: GenerateArgs) -> Result<()> {
    let mut opts = GenerateOptions {
        preset: a.preset,
        events: a.events,
        seed: a.seed,
        days: a.days,
        ..Default::default()
    };
    if let Some(end) = a.end {
        opts.end = end;
    }
    let cwd = std::env::current_dir()?;
    let out = objects::open_raw(&cwd, &a.out).map_err(invalid)?;
    let bar = progress::Bar::new(opts.events, "generating events");
    let report = generate::generate(&opts, &out, &|n| bar.set(n)).await?;
    bar.finish();
    let secs = report.elapsed.as_secs_f64();
    println!(
        "wrote {} events ({} users, {} duplicates, {} bad rows, {} late) in {} files, {:.1} MB, to {} in {:.1}s ({:.0} events/s)",
        report.events,
        report.users,
        report.duplicates,
        report.bad_rows,
        report.late,
        report.files,
        report.bytes as f64 / 1e6,
        out.url,
        secs,
        report.events as f64 / secs.max(1e-9)
    );
    Ok(())
}
