//! `cohort compile --script`: a first run of the space with a recording sink (the same
//! stages as a run, see [`super::compute`]), whose steps `crate::script::steps` renders as
//! one SQL script for another engine.

use chrono::{DateTime, Utc};

use super::ctx::{Quiet, RunCtx, RunOptions, new_scratch};
use super::lifecycle::new_record;
use super::output::output_location;
use super::sink::StageSink;
use crate::error::EngineResult;
use crate::script::steps::{RAW_SUFFIX, ScriptHeader, Step, render};
use crate::script::unparse::SqlDialect;
use crate::spec::{Preset, Space};

/// Evaluates `space` as a first run as of `as_of` (no previous run, nothing published) with a
/// recording sink and returns its steps, ending with the published tables.
pub async fn steps(space: &Space, as_of: DateTime<Utc>) -> EngineResult<Vec<Step>> {
    // A first run: the previous run's tables must not be seen, so the output is a fresh folder.
    let out_dir = tempfile::tempdir().map_err(crate::error::StoreError::from)?;
    // Every definition first appears in this first run.
    let mut space = super::backfill::resolve(space, None, as_of);
    space.output = out_dir.path().display().to_string();
    let opts = RunOptions {
        as_of: Some(as_of),
        full_rebuild: true,
        ..Default::default()
    };
    let out = output_location(&space)?;
    let mut rec = new_record(&space, &opts, "script", Utc::now());
    let scratch = new_scratch(&opts)?;
    let sink = StageSink::Record(Vec::new());
    let mut rc = RunCtx::new(&space, None, &opts, &Quiet, out, &mut rec, scratch, sink)?;
    let (events, _identity) = super::compute(&mut rc).await?;
    super::publish::record(&mut rc, events).await?;
    Ok(std::mem::replace(&mut rc.sink, StageSink::Materialize).into_steps())
}

/// `space` as one script in `dialect` (see [`crate::script::steps`]), planned from a first
/// run as of `as_of` over the space's data as it is now.
pub async fn script(
    space: &Space,
    as_of: DateTime<Utc>,
    dialect: SqlDialect,
) -> EngineResult<String> {
    let steps = steps(space, as_of).await?;
    let mut raw = Vec::new();
    let mut sources = Vec::new();
    for s in &space.sources {
        match s.preset {
            Preset::Events => {
                raw.push((s.name.clone(), format!("{}{RAW_SUFFIX}", s.name)));
                sources.push(format!("{}{RAW_SUFFIX}", s.name));
            }
            _ => sources.push(format!("{}.<table>", s.name)),
        }
    }
    let header = ScriptHeader {
        space: &space.name,
        as_of: &as_of.to_rfc3339(),
        sources,
    };
    Ok(render(&steps, dialect, &header, &raw)?)
}
