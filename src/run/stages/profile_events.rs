//! `profile_events`: every event with its profile, written once to the scratch folder for
//! every later pass of the traits stage. Under a memory limit its events are too many for,
//! the join runs one bucket of message ids at a time (see [`crate::run::bucketed`]).

use std::path::Path;

use datafusion::common::JoinType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, col};
use datafusion::prelude::{DataFrame, SessionContext};

use crate::error::EngineResult;
use crate::run::bucketed;
use crate::run::sink::StageSink;
use crate::run::tables::{EVENT_COLUMNS, stage};

/// Each event of `events` (its message id as `ev_message_id`) with its profile from
/// `event_profiles`: the small (message_id, profile_id) side is the join's build side, the
/// events stream past it.
pub fn with_profiles(
    event_profiles: LogicalPlan,
    events: LogicalPlan,
) -> datafusion::common::Result<LogicalPlan> {
    let mut out: Vec<datafusion::prelude::Expr> = EVENT_COLUMNS.into_iter().map(col).collect();
    out.push(col("profile_id"));
    LogicalPlanBuilder::from(event_profiles)
        .join(
            events,
            JoinType::Inner,
            (vec!["message_id"], vec!["ev_message_id"]),
            None,
        )?
        .project(out)?
        .build()
}

/// Registers `profile_events`: `events` (message id as `ev_message_id`) joined with
/// `event_profiles` (`message_id`, `profile_id`), kept in `scratch` (recorded when `sink`
/// records a script), in `k` buckets (the run's [`crate::run::ctx::RunCtx::join_buckets`]).
pub async fn keep(
    ctx: &SessionContext,
    sink: &mut StageSink,
    event_profiles: DataFrame,
    events: LogicalPlan,
    (k, scratch): (u32, Option<&Path>),
) -> EngineResult<()> {
    let event_profiles = event_profiles.into_unoptimized_plan();
    // A script records the plain join.
    let Some(dir) = scratch.filter(|_| k > 1 && !sink.recording()) else {
        let pe = with_profiles(event_profiles, events)?;
        return sink.keep(ctx, pe, stage::PROFILE_EVENTS, scratch).await;
    };
    let dir = dir.join(stage::PROFILE_EVENTS);
    let ep = (event_profiles, "message_id");
    let ev = (events, "ev_message_id");
    let plan = bucketed::materialize_join(ctx, ep, ev, with_profiles, k, &dir).await?;
    let df = ctx.execute_logical_plan(plan).await?;
    ctx.register_table(stage::PROFILE_EVENTS, df.into_view())?;
    Ok(())
}
