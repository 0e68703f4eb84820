//! `profile_events`: every event with its profile, written once to the scratch folder for
//! every later pass of the traits stage. Under a memory limit its events are too many for,
//! the join runs one bucket of message ids at a time (see [`crate::run::bucketed`]). A full
//! run there joins the events with their profiles once: the published `events` table's rows
//! are written to scratch, and `profile_events` reads its rows from them
//! ([`keep_published`]).

use std::path::Path;

use datafusion::common::JoinType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, col};
use datafusion::prelude::{DataFrame, SessionContext};

use crate::error::EngineResult;
use crate::run::bucketed::{self, Layout};
use crate::run::events_table::{self, Rows};
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

/// Registers `profile_events` as the rows of the published `events` table (written to scratch
/// in the layout's buckets and parts, see [`events_table::published_plan`]) that have a
/// profile and are not after `as_of_micros`: the same rows as [`keep`]'s join of the run's
/// `events` with every event's profile, for a full run, whose `events` are its history up to
/// the as-of. Returns the published rows, for the publish to write without joining again.
pub async fn keep_published(
    ctx: &SessionContext,
    layout: Layout<'_>,
    as_of_micros: i64,
) -> EngineResult<Rows> {
    let (whole, parts) = events_table::published_plan(ctx, layout).await?;
    let mut out: Vec<datafusion::prelude::Expr> = EVENT_COLUMNS.into_iter().map(col).collect();
    out.push(col("profile_id"));
    let as_of = datafusion::prelude::lit(datafusion::common::ScalarValue::TimestampMicrosecond(
        Some(as_of_micros),
        Some("UTC".into()),
    ));
    let pe = LogicalPlanBuilder::from(whole.clone())
        .filter(
            col("profile_id")
                .is_not_null()
                .and(col("timestamp").lt_eq(as_of)),
        )?
        .project(out)?
        .build()?;
    let df = ctx.execute_logical_plan(pe).await?;
    ctx.register_table(stage::PROFILE_EVENTS, df.into_view())?;
    Ok((whole, parts))
}
