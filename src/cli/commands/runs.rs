//! `cohort runs`: a space's run history.

use std::path::Path;

use anyhow::Result;

use super::super::render;
use super::load_space;
use crate::read;

pub(in crate::cli) async fn runs_cmd(dir: &Path, limit: usize) -> Result<()> {
    let space = load_space(dir).await?;
    let runs = read::history::runs(&space).await?;
    if runs.is_empty() {
        println!("`{}` has no runs yet", space.name);
        return Ok(());
    }
    render::print_runs(&runs, limit);
    Ok(())
}
