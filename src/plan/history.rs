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
    let singles = without_ids(rows.clone(), dup_ids.clone(), out.clone())?;
    let firsts = ranked_firsts(rows, dup_ids, out)?;
    LogicalPlanBuilder::from(singles).union(firsts)?.build()
}

/// The rows of `rows` whose message id is not in `ids` (column `dup_id`), projected to `out`.
/// The ids are the join's build side; the rows stream past them.
fn without_ids(rows: LogicalPlan, ids: LogicalPlan, out: Vec<Expr>) -> Result<LogicalPlan> {
    LogicalPlanBuilder::from(ids)
        .join(
            rows,
            JoinType::RightAnti,
            (vec!["dup_id"], vec!["message_id"]),
            None,
        )?
        .project(out)?
        .build()
}

/// The rows of `rows` whose message id is in `ids` (column `dup_id`); the ids are the join's
/// build side.
fn with_ids(rows: LogicalPlan, ids: LogicalPlan) -> Result<LogicalPlanBuilder> {
    LogicalPlanBuilder::from(ids).join(
        rows,
        JoinType::RightSemi,
        (vec!["dup_id"], vec!["message_id"]),
        None,
    )
}

/// Of each message id in `dup_ids` (column `dup_id`), its first copy in `rows`, projected to
/// `out`.
fn ranked_firsts(rows: LogicalPlan, dup_ids: LogicalPlan, out: Vec<Expr>) -> Result<LogicalPlan> {
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
    with_ids(rows, dup_ids)?
        .window(vec![rn])?
        .filter(column("dup_rank").eq(lit(1u64)))?
        .project(out)?
        .build()
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
    let ids = new_ids(new.clone())?;
    let rows = LogicalPlanBuilder::from(previous).union(new)?.build()?;
    first_copies(rows, ids, out)
}

/// The message ids of `new` that `previous` holds already (column `dup_id`): the previous
/// rows a run that read `new` may replace. Reads only the previous rows' message ids.
pub fn replaced_ids(previous: LogicalPlan, new: LogicalPlan) -> Result<LogicalPlan> {
    with_ids(previous, new_ids(new)?)?
        .project(vec![column("message_id").alias("dup_id")])?
        .build()
}

fn new_ids(new: LogicalPlan) -> Result<LogicalPlan> {
    LogicalPlanBuilder::from(new)
        .aggregate(
            vec![column("message_id").alias("dup_id")],
            Vec::<Expr>::new(),
        )?
        .build()
}

/// What [`extend`] adds to `previous` for the `new` rows: of each message id of `new`, its
/// first copy over both. `replaced` are the ids of `new` that `previous` holds
/// ([`replaced_ids`]), None when it holds none: only those previous rows are read. With
/// [`with_firsts`], the history after the run, so that a run writes only these rows and
/// reads the previous ones where they are.
pub fn new_firsts(
    previous: LogicalPlan,
    replaced: Option<LogicalPlan>,
    new: LogicalPlan,
) -> Result<LogicalPlan> {
    let out: Vec<Expr> = history_columns().map(column).collect();
    let ids = new_ids(new.clone())?;
    let rows = match replaced {
        Some(replaced) => {
            let copies = with_ids(previous, replaced)?
                .project(out.clone())?
                .build()?;
            LogicalPlanBuilder::from(copies).union(new)?.build()?
        }
        None => new,
    };
    ranked_firsts(rows, ids, out)
}

/// The history `previous` extended by `firsts` ([`new_firsts`]): the previous rows but those
/// of the `replaced` ids, and `firsts`. The same rows as [`extend`]. With nothing replaced
/// (the common case: new events), the previous rows are read as they are.
pub fn with_firsts(
    previous: LogicalPlan,
    replaced: Option<LogicalPlan>,
    firsts: LogicalPlan,
) -> Result<LogicalPlan> {
    let out: Vec<Expr> = history_columns().map(column).collect();
    let kept = match replaced {
        Some(ids) => without_ids(previous, ids, out.clone())?,
        None => LogicalPlanBuilder::from(previous)
            .project(out.clone())?
            .build()?,
    };
    let firsts = LogicalPlanBuilder::from(firsts).project(out)?.build()?;
    LogicalPlanBuilder::from(kept).union(firsts)?.build()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// History rows `(message_id, second, event)`, the other text columns set from them.
    fn rows(ctx: &SessionContext, rows: &[(&str, i64, &str)]) -> LogicalPlan {
        let fields: Vec<Field> = history_columns()
            .map(|c| match c {
                "timestamp" => Field::new(
                    c,
                    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
                    true,
                ),
                _ => Field::new(c, DataType::Utf8, true),
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let columns: Vec<ArrayRef> = history_columns()
            .map(|c| -> ArrayRef {
                match c {
                    "timestamp" => Arc::new(
                        TimestampMicrosecondArray::from_iter_values(
                            rows.iter().map(|r| r.1 * 1_000_000),
                        )
                        .with_timezone("UTC"),
                    ),
                    "message_id" => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)))
                    }
                    "event" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                    "source" => Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "web"))),
                    _ => Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        ctx.read_batch(batch).unwrap().into_unoptimized_plan()
    }

    async fn sorted(ctx: &SessionContext, plan: LogicalPlan) -> Vec<String> {
        let plan = LogicalPlanBuilder::from(plan)
            .project(vec![
                cast(column("message_id"), DataType::Utf8).alias("m"),
                cast(column("timestamp"), DataType::Utf8).alias("t"),
                column("event"),
            ])
            .unwrap()
            .build()
            .unwrap();
        let batches = ctx
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut out: Vec<String> = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(str::to_string)
            .collect();
        out.sort();
        out
    }

    /// Writing only the new ids' first copies and reading the previous rows where they are
    /// gives the history [`extend`] gives: over random previous and new rows whose ids repeat
    /// within and across both, with earlier and later copies.
    #[tokio::test]
    async fn the_history_split_into_kept_and_new_rows_is_the_extended_history() {
        let ctx = SessionContext::new();
        let mut seed = 0x5eed_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let ids: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        let events = ["a", "b", "c"];
        for case in 0..20 {
            // The previous history has one row per id; the new rows repeat ids freely.
            let mut prev: Vec<(&str, i64, &str)> = Vec::new();
            for id in &ids {
                if next(3) > 0 {
                    prev.push((id, next(50) as i64, events[next(3) as usize]));
                }
            }
            let new: Vec<(&str, i64, &str)> = (0..next(10) + 1)
                .map(|_| {
                    let id = &ids[next(ids.len() as u64) as usize];
                    (id.as_str(), next(50) as i64, events[next(3) as usize])
                })
                .collect();
            let whole = extend(Some(rows(&ctx, &prev)), rows(&ctx, &new)).unwrap();
            let replaced = replaced_ids(rows(&ctx, &prev), rows(&ctx, &new)).unwrap();
            let n = ctx
                .execute_logical_plan(replaced.clone())
                .await
                .unwrap()
                .count()
                .await
                .unwrap();
            let shared = prev
                .iter()
                .filter(|p| new.iter().any(|r| r.0 == p.0))
                .count();
            assert_eq!(n, shared, "case {case}: replaced ids");
            let replaced = (n > 0).then_some(replaced);
            let firsts = new_firsts(rows(&ctx, &prev), replaced.clone(), rows(&ctx, &new));
            let split = with_firsts(rows(&ctx, &prev), replaced, firsts.unwrap()).unwrap();
            let (want, got) = (sorted(&ctx, whole).await, sorted(&ctx, split).await);
            assert_eq!(got, want, "case {case}: previous {prev:?}, new {new:?}");
        }
    }
}
