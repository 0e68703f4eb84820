//! `cohort vacuum`: applies a space's retention now.

use std::time::Duration;

use anyhow::Result;

use super::super::args::VacuumArgs;
use super::super::render;
use super::load_space;
use crate::run::retention::vacuum_space;

pub(in crate::cli) async fn vacuum_cmd(a: VacuumArgs) -> Result<()> {
    let space = load_space(&a.dir).await?;
    let report = vacuum_space(&space, a.retain, a.dry_run, Duration::from_secs(a.wait)).await?;
    render::print_vacuum(&space.name, &report);
    Ok(())
}
