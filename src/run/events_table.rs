//! The published `events` table, written as what changed: a run that extended the previous
//! history appends the rows of the events identity resolved again when none of them was in
//! the previous version (new events of new components), else rewrites only the days (`dt`
//! partitions) whose rows differ from the previous version (new or replaced events, events
//! whose profile changed), and keeps the previous version when nothing did. A full run
//! rewrites the table.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::JoinType;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions::expr_fn::to_char;
use datafusion::functions_aggregate::expr_fn::{bit_xor, count};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::prelude::{Expr, SessionContext, col, lit};

use super::bucketed::{self, Layout};
use super::stages::identity_affected::Changed;
use super::tables::{published, stage};
use crate::error::EngineResult;
use crate::functions::id_node;
use crate::plan::history as hp;
use crate::plan::traits::ts;
use crate::store::{delta, manifest, objects};

/// What the events stage read this run, for the `events` table.
pub struct NewRows {
    /// The good rows this run read (history columns), or None when it read no file.
    pub rows: Option<LogicalPlan>,
}

/// Writes `events` for this run; returns the version that holds it. `extended` holds the rows
/// this run added when it extended the previous run's history (None for a full run); `made`,
/// its rows and their parts when the traits stage already wrote them to scratch (see
/// [`published_plan`]). `affected` is set when the identity stage resolved only what this
/// run's events reach (its `id_affected_messages` is registered): every other event keeps its
/// previous profile, so only the days of those events can differ ([`affected_days`]).
pub async fn write(
    ctx: &SessionContext,
    out: &objects::Location,
    previous: Option<&manifest::Manifest>,
    (extended, made): (Option<NewRows>, Option<Rows>),
    layout: Layout<'_>,
    affected: Option<Changed>,
) -> EngineResult<u64> {
    let loc = out.child(published::EVENTS);
    let prev_version = previous
        .and_then(|m| m.tables.get(published::EVENTS))
        .copied();
    // A run that died after writing `events` and before publishing left a version the
    // manifest does not name: rewrite the table rather than replace days of that version.
    let extends = match (&extended, prev_version) {
        (Some(_), Some(v)) => delta::open(&loc).await?.version() == Some(v),
        _ => false,
    };
    let (Some(new), Some(v), true) = (extended, prev_version, extends) else {
        let (_, parts) = match made {
            Some(rows) => rows,
            None => published_plan(ctx, layout).await?,
        };
        return Ok(delta::overwrite_partitioned_parts(&loc, parts, &ctx.state(), &["dt"]).await?);
    };
    let prev = ctx
        .read_table(delta::provider(&loc, v).await?)?
        .into_unoptimized_plan();
    // Under a memory limit the whole join is made in buckets below; the days' rows are joined
    // in one piece here, which only a run without a limit may hold for any number of days.
    let (days, plan) = if let Some(c) = affected.filter(|_| layout.join_buckets <= 1) {
        if affected_ids(ctx).await?.count().await? == 0 {
            // No event was resolved again: every row is the previous version's.
            return Ok(v);
        }
        // A previous row of an event resolved again is the previous version of a changed
        // event, an event of a component it reached, or (neither being the case) an event
        // the previous run did not see yet: one from its as-of's day on. (`event_history_added`
        // is there when the run replaced no event of the history.)
        let added = ctx.table_exist(stage::HISTORY_ADDED)?;
        let unseen = previous
            .and_then(|m| chrono::DateTime::parse_from_rfc3339(&m.as_of).ok())
            .filter(|_| added && c.replaced == 0 && c.reached == 0)
            .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d").to_string());
        let prev = match unseen {
            Some(day) => LogicalPlanBuilder::from(prev)
                .filter(col("dt").gt_eq(lit(day)))?
                .build()?,
            None => prev,
        };
        let mut days = affected_days(ctx, prev_side(ctx, prev)?).await?;
        if days.is_empty() && added {
            // Every event resolved again is new to the table, so one this run added: their
            // rows are appended, and no row of the previous version changes.
            let rows = affected_rows(ctx).await?;
            if let Some(v) = delta::append_at(&loc, rows, &ctx.state(), v).await? {
                return Ok(v);
            }
        }
        days.extend(affected_days(ctx, now_side(ctx).await?).await?);
        (days.clone(), day_rows(ctx, &days).await?)
    } else {
        let (plan, _) = match made {
            Some(rows) => rows,
            None => published_plan(ctx, layout).await?,
        };
        (changed_days(ctx, &plan, prev, new.rows).await?, plan)
    };
    if days.is_empty() {
        return Ok(v);
    }
    let list: Vec<Expr> = days.iter().map(|d| lit(d.as_str())).collect();
    let only = col("dt").in_list(list, false);
    let plan = LogicalPlanBuilder::from(plan)
        .filter(only.clone())?
        .build()?;
    Ok(delta::replace_where(&loc, plan, &ctx.state(), only).await?)
}

/// The days whose rows can differ from the previous version when identity resolved only the
/// affected events are the days of those events (which hold every message id this run read,
/// so the copies it replaced too) in this run's history ([`now_side`]) and in the previous
/// version ([`prev_side`]): the days of `side`'s rows that are affected events. Reads two
/// columns, never joining the events with their profiles.
async fn affected_days(
    ctx: &SessionContext,
    side: datafusion::prelude::DataFrame,
) -> EngineResult<BTreeSet<String>> {
    // The few affected ids are the build side; the table streams past them.
    let hit = affected_ids(ctx)
        .await?
        .join_on(side, JoinType::RightSemi, [col("a_mid").eq(col("h_mid"))])?
        .select_columns(&["day"])?;
    distinct_days(ctx, hit.into_unoptimized_plan()).await
}

fn text(c: &str) -> Expr {
    cast(col(c), DataType::Utf8)
}

/// The message ids identity resolved again, as `a_mid`.
async fn affected_ids(ctx: &SessionContext) -> EngineResult<datafusion::prelude::DataFrame> {
    Ok(ctx
        .table(stage::ID_AFFECTED_MESSAGES)
        .await?
        .select(vec![text("message_id").alias("a_mid")])?)
}

/// This run's history as `(h_mid, day)`.
async fn now_side(ctx: &SessionContext) -> EngineResult<datafusion::prelude::DataFrame> {
    Ok(ctx.table(stage::HISTORY).await?.select(vec![
        text("message_id").alias("h_mid"),
        to_char(col("timestamp"), lit("%Y-%m-%d")).alias("day"),
    ])?)
}

/// The previous version `prev` as `(h_mid, day)`.
fn prev_side(
    ctx: &SessionContext,
    prev: LogicalPlan,
) -> EngineResult<datafusion::prelude::DataFrame> {
    Ok(
        datafusion::prelude::DataFrame::new(ctx.state(), prev).select(vec![
            text("message_id").alias("h_mid"),
            text("dt").alias("day"),
        ])?,
    )
}

/// The rows `events` publishes for the events identity resolved again when this run added
/// them all to the history, with their profiles.
async fn affected_rows(ctx: &SessionContext) -> EngineResult<LogicalPlan> {
    let affected = |table: &'static str| async move {
        EngineResult::Ok(
            affected_ids(ctx)
                .await?
                .join_on(
                    ctx.table(table).await?,
                    JoinType::RightSemi,
                    [col("a_mid").eq(text("message_id"))],
                )?
                .into_unoptimized_plan(),
        )
    };
    let history = affected(stage::HISTORY_ADDED).await?;
    let profiles = affected(stage::EVENT_PROFILES).await?;
    Ok(hp::published_events(history, profiles)?)
}

/// The rows `events` publishes for `days`: the history's events of those days with their
/// profiles. The days' events are found first, then their profiles, so that the join
/// builds on those events' profiles only.
async fn day_rows(ctx: &SessionContext, days: &BTreeSet<String>) -> EngineResult<LogicalPlan> {
    let history = ctx.table(stage::HISTORY).await?.into_unoptimized_plan();
    // The caller keeps only the days' rows (`dt`); this narrows the read first.
    let in_days = match day_ranges(days) {
        Some(ranges) => ranges
            .into_iter()
            .map(|(a, b)| col("timestamp").gt_eq(a).and(col("timestamp").lt(b)))
            .reduce(Expr::or)
            .unwrap_or(lit(false)),
        None => lit(true),
    };
    let history = LogicalPlanBuilder::from(history).filter(in_days)?.build()?;
    let ids = LogicalPlanBuilder::from(history.clone())
        .project(vec![col("message_id").alias("d_mid")])?
        .build()?;
    let profiles = ctx
        .table(stage::EVENT_PROFILES)
        .await?
        .into_unoptimized_plan();
    let profiles = LogicalPlanBuilder::from(ids)
        .join(
            profiles,
            JoinType::RightSemi,
            (vec!["d_mid"], vec!["message_id"]),
            None,
        )?
        .build()?;
    Ok(hp::published_events(history, profiles)?)
}

/// Each run of consecutive days of `days` (`YYYY-MM-DD`) as [start, end) UTC timestamps; None
/// when one is not a date.
fn day_ranges(days: &BTreeSet<String>) -> Option<Vec<(Expr, Expr)>> {
    let mut ranges: Vec<(chrono::NaiveDate, chrono::NaiveDate)> = Vec::new();
    for d in days {
        let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()?;
        let next = d + chrono::Days::new(1);
        match ranges.last_mut() {
            Some((_, end)) if *end == d => *end = next,
            _ => ranges.push((d, next)),
        }
    }
    let at = |d: chrono::NaiveDate| {
        ts(d.and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros())
    };
    Some(ranges.into_iter().map(|(a, b)| (at(a), at(b))).collect())
}

/// The rows of a table and the same rows in parts of days.
pub type Rows = (LogicalPlan, Vec<LogicalPlan>);

/// The rows of `events` as this run publishes it: the history with each event's profile, and
/// the same rows in the layout's parts of days (one part, the whole, when it has one). In more
/// than one bucket, or in parts, the join is written to the scratch folder first, a bucket of
/// message ids at a time (see [`bucketed`]). A full run under a limit makes them once, in the
/// traits stage, and reads its `profile_events` from them ([`crate::run::stages::profile_events`]).
pub async fn published_plan(ctx: &SessionContext, layout: Layout<'_>) -> EngineResult<Rows> {
    let history = ctx.table(stage::HISTORY).await?.into_unoptimized_plan();
    let profiles = ctx
        .table(stage::EVENT_PROFILES)
        .await?
        .into_unoptimized_plan();
    let (k, g) = (layout.join_buckets, layout.write_parts);
    if k <= 1 && g <= 1 {
        let whole = hp::published_events(history, profiles)?;
        return Ok((whole.clone(), vec![whole]));
    }
    let dir = layout.scratch.join(published::EVENTS);
    let join = |ep, h| hp::published_events(h, ep);
    let split = (g > 1).then_some(("dt", g));
    bucketed::materialize_join_split(
        ctx,
        (profiles, "message_id"),
        (history, "message_id"),
        join,
        k,
        &dir,
        split,
    )
    .await
}

/// Each day's rows of an `events` table as (rows, XOR of a 64-bit code of each row's message
/// id and profile): two versions of a day with the same rows have the same fingerprint.
/// Computed by one grouped aggregation (which spills), never by joining the two versions.
async fn fingerprints(
    ctx: &SessionContext,
    table: LogicalPlan,
) -> EngineResult<BTreeMap<String, (i64, i64)>> {
    let text = |c: &str| cast(col(c), DataType::Utf8);
    let code = id_node(
        text("message_id"),
        coalesce(vec![text("profile_id"), lit("")]),
    );
    let plan = LogicalPlanBuilder::from(table)
        .aggregate(
            vec![text("dt").alias("day")],
            vec![count(lit(1)).alias("n"), bit_xor(code).alias("x")],
        )?
        .build()?;
    let mut out = BTreeMap::new();
    for b in ctx.execute_logical_plan(plan).await?.collect().await? {
        let day = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        let x = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(day.value(i).to_string(), (n.value(i), x.value(i)));
        }
    }
    Ok(out)
}

/// The days whose rows differ between `now` (the table as this run publishes it) and `prev`:
/// days of the rows read this run and the previous days of their message ids (a copy read
/// now can replace an event), and days whose events came, went or changed profile.
async fn changed_days(
    ctx: &SessionContext,
    now: &LogicalPlan,
    prev: LogicalPlan,
    read: Option<LogicalPlan>,
) -> EngineResult<BTreeSet<String>> {
    let (a, b) = (
        fingerprints(ctx, now.clone()).await?,
        fingerprints(ctx, prev.clone()).await?,
    );
    let mut days: BTreeSet<String> = a
        .iter()
        .filter(|(d, f)| b.get(*d) != Some(*f))
        .map(|(d, _)| d.clone())
        .collect();
    days.extend(b.keys().filter(|d| !a.contains_key(*d)).cloned());
    let Some(read) = read else {
        return Ok(days);
    };
    let read = LogicalPlanBuilder::from(read)
        .project(vec![
            col("message_id").alias("r_mid"),
            to_char(col("timestamp"), lit("%Y-%m-%d")).alias("r_dt"),
        ])?
        .build()?;
    let prev_days = LogicalPlanBuilder::from(read.clone())
        .join(
            LogicalPlanBuilder::from(prev)
                .project(vec![
                    cast(col("message_id"), DataType::Utf8).alias("p_mid"),
                    cast(col("dt"), DataType::Utf8).alias("p_dt"),
                ])?
                .build()?,
            JoinType::RightSemi,
            (vec!["r_mid"], vec!["p_mid"]),
            None,
        )?
        .project(vec![col("p_dt").alias("day")])?
        .build()?;
    let read_days = LogicalPlanBuilder::from(read)
        .project(vec![col("r_dt").alias("day")])?
        .build()?;
    for p in [read_days, prev_days] {
        days.extend(distinct_days(ctx, p).await?);
    }
    Ok(days)
}

/// The distinct non-null values of `plan`'s first column, as text (days, here).
pub(super) async fn distinct_days(
    ctx: &SessionContext,
    plan: LogicalPlan,
) -> EngineResult<BTreeSet<String>> {
    let p = LogicalPlanBuilder::from(plan).distinct()?.build()?;
    let mut days = BTreeSet::new();
    for b in ctx.execute_logical_plan(p).await?.collect().await? {
        let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(datafusion::error::DataFusionError::from)?;
        let c = c.as_string::<i32>();
        days.extend(
            (0..c.len())
                .filter(|i| c.is_valid(*i))
                .map(|i| c.value(i).to_string()),
        );
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|d| d.to_string()).collect()
    }

    /// Consecutive days make one range, a gap starts another, across a month's end; a value
    /// that is not a date gives no ranges (the read is not narrowed, nothing is lost).
    #[test]
    fn days_become_ranges_of_consecutive_days() {
        let r = day_ranges(&days(&[
            "2026-10-30",
            "2026-10-31",
            "2026-11-01",
            "2026-11-03",
        ]))
        .unwrap();
        let text: Vec<String> = r.iter().map(|(a, b)| format!("{a} .. {b}")).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].contains("1793318400000000"), "{text:?}"); // 2026-10-30
        assert!(text[0].contains("1793577600000000"), "{text:?}"); // 2026-11-02
        assert!(text[1].contains("1793664000000000"), "{text:?}"); // 2026-11-03
        assert!(text[1].contains("1793750400000000"), "{text:?}"); // 2026-11-04
        assert!(day_ranges(&days(&["2026-11-01", "__HIVE_DEFAULT_PARTITION__"])).is_none());
        assert_eq!(day_ranges(&days(&[])).unwrap().len(), 0);
    }
}
