//! `cohort sync`: delivers what is due to the space's destinations now and prints one line
//! per destination.

use std::path::Path;

use anyhow::{Result, bail};

use super::load_space;
use crate::error::Error;
use crate::serve::destinations::{SyncOptions, sync};

/// Exit 1 when a destination stopped early.
pub(in crate::cli) async fn sync_cmd(dir: &Path, only: Vec<String>) -> Result<()> {
    let space = load_space(dir).await?;
    for name in &only {
        if !space.destinations.iter().any(|d| &d.name == name) {
            return Err(Error::NotFound(format!(
                "space `{}` has no destination `{name}`",
                space.name
            ))
            .into());
        }
    }
    if space.destinations.is_empty() {
        println!("space `{}` has no destinations", space.name);
        return Ok(());
    }
    let opts = SyncOptions {
        only,
        ..Default::default()
    };
    let report = sync(&space, &opts).await?;
    let Some(run) = &report.run_id else {
        println!(
            "space `{}` has no published run yet: `cohort run` it first",
            space.name
        );
        return Ok(());
    };
    println!("synced up to run {run}");
    let mut failed = 0;
    for d in &report.destinations {
        println!(
            "{}: {} audience(s), {} planned, {} delivered, {} dead-lettered, {} request(s), {} \
             retried{}",
            d.name,
            d.audiences.len(),
            d.planned,
            d.delivered,
            d.dead_lettered,
            d.requests,
            d.retries,
            if d.resumed > 0 {
                format!(", {} interrupted outbox(es) resumed", d.resumed)
            } else {
                String::new()
            }
        );
        if let Some(e) = &d.error {
            eprintln!("error: destination `{}`: {e}", d.name);
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} destination(s) stopped early");
    }
    Ok(())
}
