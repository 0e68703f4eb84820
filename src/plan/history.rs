//! Deduplication by message id, and the event history a run keeps between runs.
//!
//! A run's `events` are the good rows up to as-of, one per message id: the earliest copy by
//! timestamp (ties broken by source, source table, type, event, properties, traits). The
//! history (published as the `events` table) is the same rule over every good row ingested so
//! far, whatever its time: keeping the earliest copy and then cutting at as-of gives the same
//! events as cutting first, so a run can extend the previous history with the rows of the
//! files it has not read yet instead of reading every source file again.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{JoinType, Result, ScalarValue};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, cast};
use datafusion::prelude::{col, lit};

use super::events::NORMALIZED;

/// Columns of the event history: the normalized columns but `timestamp_raw`.
pub fn history_columns() -> impl Iterator<Item = &'static str> {
    NORMALIZED.into_iter().filter(|c| *c != "timestamp_raw")
}

/// Columns of the run's `events` view: the history's but `source_table`.
pub fn event_columns() -> impl Iterator<Item = &'static str> {
    history_columns().filter(|c| *c != "source_table")
}

fn column(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::from_name(name))
}

fn utc_micros(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some(Arc::from("UTC")),
    ))
}

/// Good rows up to `as_of_micros`, one per message id (the earliest by timestamp).
///
/// Only the few message ids that occur more than once are ranked; every other row passes
/// through untouched, so deduplication never sorts the whole (wide) event history.
pub fn valid_events(classified: LogicalPlan, as_of_micros: i64) -> Result<LogicalPlan> {
    let good = LogicalPlanBuilder::from(classified)
        .filter(
            column("error_reason")
                .is_null()
                .and(column("timestamp").lt_eq(utc_micros(as_of_micros))),
        )?
        .build()?;
    let dup_ids = LogicalPlanBuilder::from(good.clone())
        .aggregate(
            vec![column("message_id")],
            vec![datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("copies")],
        )?
        .filter(column("copies").gt(lit(1i64)))?
        .project(vec![column("message_id").alias("dup_id")])?
        .build()?;
    first_copies(good, dup_ids, event_columns().map(column).collect())
}

/// The rows of `rows` whose message id is not in `dup_ids` (column `dup_id`), and of each id
/// in it the first copy, all projected to `out`.
fn first_copies(rows: LogicalPlan, dup_ids: LogicalPlan, out: Vec<Expr>) -> Result<LogicalPlan> {
    let keys = (vec!["dup_id"], vec!["message_id"]);
    let singles = LogicalPlanBuilder::from(dup_ids.clone())
        .join(rows.clone(), JoinType::RightAnti, keys.clone(), None)?
        .project(out.clone())?
        .build()?;
    let rn = row_number()
        .partition_by(vec![column("message_id")])
        .order_by(vec![
            column("timestamp").sort(true, false),
            column("source").sort(true, false),
            column("source_table").sort(true, false),
            column("type").sort(true, false),
            column("event").sort(true, true),
            column("properties").sort(true, true),
            column("traits").sort(true, true),
        ])
        .build()?
        .alias("dup_rank");
    let firsts = LogicalPlanBuilder::from(dup_ids)
        .join(rows, JoinType::RightSemi, keys, None)?
        .window(vec![rn])?
        .filter(column("dup_rank").eq(lit(1u64)))?
        .project(out)?
        .build()?;
    LogicalPlanBuilder::from(singles).union(firsts)?.build()
}

/// The good rows of `classified` (any time), with the history's columns.
pub fn good_rows(classified: LogicalPlan) -> Result<LogicalPlan> {
    LogicalPlanBuilder::from(classified)
        .filter(column("error_reason").is_null())?
        .project(history_columns().map(column))?
        .build()
}

/// A history read back from its table, with the types the history has in a run (text as
/// `Utf8`, UTC microsecond timestamps), whatever the table's reader made of them.
pub fn typed_history(table: LogicalPlan) -> Result<LogicalPlan> {
    let exprs = history_columns().map(|c| {
        let t = if c == "timestamp" {
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
        } else {
            DataType::Utf8
        };
        cast(column(c), t).alias(c)
    });
    LogicalPlanBuilder::from(table).project(exprs)?.build()
}

/// The history after a run that read `new` rows (history columns, good rows only): one row
/// per message id over `previous` and `new`. With no previous history, every id seen twice is
/// ranked; with one, only the ids of the new rows can have copies, so only they are ranked
/// and the previous rows are read once, never sorted or grouped.
pub fn extend(previous: Option<LogicalPlan>, new: LogicalPlan) -> Result<LogicalPlan> {
    let out: Vec<Expr> = history_columns().map(column).collect();
    let Some(previous) = previous else {
        let dup_ids = LogicalPlanBuilder::from(new.clone())
            .aggregate(
                vec![column("message_id")],
                vec![datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("copies")],
            )?
            .filter(column("copies").gt(lit(1i64)))?
            .project(vec![column("message_id").alias("dup_id")])?
            .build()?;
        return first_copies(new, dup_ids, out);
    };
    let new_ids = LogicalPlanBuilder::from(new.clone())
        .aggregate(
            vec![column("message_id").alias("dup_id")],
            Vec::<Expr>::new(),
        )?
        .build()?;
    let rows = LogicalPlanBuilder::from(previous).union(new)?.build()?;
    first_copies(rows, new_ids, out)
}

/// The run's `events`: the history's events up to `as_of_micros`.
pub fn events_up_to(history: LogicalPlan, as_of_micros: i64) -> Result<LogicalPlan> {
    LogicalPlanBuilder::from(history)
        .filter(column("timestamp").lt_eq(utc_micros(as_of_micros)))?
        .project(event_columns().map(column))?
        .build()
}

/// The published `events` table: the history with each event's profile (null for events
/// after the run's as-of, which no profile has yet) and its UTC day `dt`, the partition.
pub fn published_events(history: LogicalPlan, event_profiles: LogicalPlan) -> Result<LogicalPlan> {
    let profiles = LogicalPlanBuilder::from(event_profiles)
        .project(vec![
            column("message_id").alias("ep_message_id"),
            column("profile_id"),
        ])?
        .build()?;
    let mut exprs = vec![col("profile_id")];
    exprs.extend(history_columns().map(column));
    exprs.push(
        datafusion::functions::expr_fn::to_char(column("timestamp"), lit("%Y-%m-%d")).alias("dt"),
    );
    // The small (message_id, profile_id) side is the join's build side; the events stream
    // past it (a hash join's build side cannot spill).
    LogicalPlanBuilder::from(profiles)
        .join(
            history,
            JoinType::Right,
            (vec!["ep_message_id"], vec!["message_id"]),
            None,
        )?
        .project(exprs)?
        .build()
}
