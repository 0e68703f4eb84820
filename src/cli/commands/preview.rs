//! `cohort preview`: one audience (of the space, or from a file not saved yet) evaluated
//! without publishing.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::super::render;
use super::{invalid, load_space};
use crate::error::Error;
use crate::read;
use crate::run::RunOptions;
use crate::spec;

pub(in crate::cli) async fn preview_cmd(
    dir: &Path,
    audience: &str,
    as_of: Option<DateTime<Utc>>,
) -> Result<()> {
    let mut space = load_space(dir).await?;
    let file = Path::new(audience);
    let key = if audience.ends_with(".yaml") || file.is_file() {
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid(format!("cannot read {audience}: {e}")))?;
        let def = spec::read_audience_text(file, &text)
            .map_err(|diags| Error::definition(&diags, file.parent().unwrap_or(Path::new("."))))?;
        spec::parsed_audience(&def).map_err(|d| Error::definition(&[d], Path::new(".")))?;
        let key = def.key.clone();
        space = read::preview::with_audience(&space, def);
        key
    } else {
        audience.to_string()
    };
    let opts = RunOptions {
        as_of: Some(as_of.unwrap_or_else(Utc::now)),
        ..Default::default()
    };
    let r = read::preview::preview(&space, &key, &opts).await?;
    render::print_preview(&r);
    Ok(())
}
