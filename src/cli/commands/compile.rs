//! `cohort compile`: each computed trait's plan and SQL in a dialect, or (`--script`) the
//! whole space as one runnable DuckDB, PostgreSQL, Spark SQL or Databricks SQL script.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::{invalid, load_space};
use crate::error::Error;
use crate::script::unparse::{SqlDialect, render_space};

pub(in crate::cli) async fn compile_cmd(
    dir: &Path,
    d: SqlDialect,
    as_of: Option<DateTime<Utc>>,
    script: bool,
) -> Result<()> {
    let as_of = as_of.unwrap_or_else(Utc::now);
    let space = load_space(dir).await?;
    if script {
        if d.script().is_none() {
            return Err(invalid(format!(
                "--script writes duckdb, postgres, spark or databricks, not {}",
                d.as_str()
            )));
        }
        print!("{}", crate::run::script(&space, as_of, d).await?);
        return Ok(());
    }
    let text =
        render_space(&space, d, as_of.timestamp_micros()).map_err(|e| Error::Definition(e.0))?;
    print!("{text}");
    // Which definitions `cohort serve` keeps live, as SQL comments after the plans.
    let live = crate::analyze::live::render(&crate::analyze::live::liveness(&space));
    for line in live.lines() {
        println!("-- {line}");
    }
    Ok(())
}
