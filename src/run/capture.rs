//! The stages of a run as a list of plans, for `cohort compile --script`: a session marked for
//! capture records every table a stage registers (its logical plan, before it is written to
//! the scratch folder), where the identity stage runs and each SQL trait's query, in the order
//! a run makes them. `script::script` turns the list into SQL for another engine.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::EngineResult;
use crate::script::script::Step;
use crate::spec::Space;

/// The steps recorded so far; a session extension.
#[derive(Default)]
pub struct PlanLog(Mutex<Vec<Step>>);

fn log(ctx: &SessionContext) -> Option<Arc<PlanLog>> {
    ctx.state().config().get_extension::<PlanLog>()
}

/// Whether `ctx` records its stages (then a run keeps no scratch copies: every stage table is
/// a view over the plans before it, which is what the script needs).
pub(crate) fn recording(ctx: &SessionContext) -> bool {
    log(ctx).is_some()
}

/// Records that `name` is a stage table computed by `plan`.
pub(crate) fn table(ctx: &SessionContext, name: &str, plan: &LogicalPlan) {
    if let Some(l) = log(ctx) {
        let mut steps = l.0.lock().expect("plan log");
        steps.retain(|s| !matches!(s, Step::Table { name: n, .. } if n == name));
        steps.push(Step::Table {
            name: name.to_string(),
            plan: plan.clone(),
        });
    }
}

/// Records a step that is not a plan (the identity stage, a SQL trait's query).
pub(crate) fn step(ctx: &SessionContext, step: Step) {
    if let Some(l) = log(ctx) {
        l.0.lock().expect("plan log").push(step);
    }
}

/// Evaluates `space` as a first run as of `as_of` (no previous run, nothing published) in a
/// recording session and returns its steps, ending with the published tables.
pub async fn capture(space: &Space, as_of: DateTime<Utc>) -> EngineResult<Vec<Step>> {
    let log = Arc::new(PlanLog::default());
    let ctx = super::session::new_session(&Default::default())?;
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let config: &mut SessionConfig = state.config_mut();
        config.set_extension(Arc::clone(&log));
    }
    // A first run: the previous run's tables must not be seen, so the output is a fresh folder.
    let out_dir = tempfile::tempdir().map_err(crate::error::StoreError::from)?;
    let mut space = space.clone();
    space.output = out_dir.path().display().to_string();
    super::capture_run(ctx, &space, as_of).await?;
    let steps = std::mem::take(&mut *log.0.lock().expect("plan log"));
    Ok(steps)
}

/// `space` as one script in `dialect` (see [`crate::script::script`]), planned from a first
/// run as of `as_of` over the space's data as it is now.
pub async fn script(
    space: &Space,
    as_of: DateTime<Utc>,
    dialect: crate::script::unparse::SqlDialect,
) -> EngineResult<String> {
    use crate::script::script::{RAW_SUFFIX, ScriptHeader, render};
    use crate::spec::Preset;
    let steps = capture(space, as_of).await?;
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
