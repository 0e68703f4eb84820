//! Trait values of a run that evaluates only the touched profiles again: this run's values of
//! those profiles, with every other profile's values as the previous run published them.

use datafusion::common::{Column, JoinType, Result, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast, col, lit};

/// `recomputed` (key + trait columns, for the touched profiles) UNION ALL the rows of
/// `previous` whose key is not in `touched` (one column, `profile_id`), with the same columns
/// cast to `recomputed`'s types (null where `previous` lacks one).
pub fn with_kept(
    recomputed: LogicalPlan,
    previous: LogicalPlan,
    touched: LogicalPlan,
    key: &str,
) -> Result<LogicalPlan> {
    let fields: Vec<_> = recomputed.schema().fields().iter().cloned().collect();
    let has = |name: &str| previous.schema().has_column_with_unqualified_name(name);
    let kept: Vec<Expr> = fields
        .iter()
        .map(|f| {
            let value = if has(f.name()) {
                cast(
                    Expr::Column(Column::new_unqualified(f.name())),
                    f.data_type().clone(),
                )
            } else {
                cast(lit(ScalarValue::Null), f.data_type().clone())
            };
            value.alias(f.name())
        })
        .collect();
    let kept = LogicalPlanBuilder::from(previous).project(kept)?;
    let kept = by_touched(kept, key, touched, JoinType::LeftAnti)?.build()?;
    let same_order: Vec<Expr> = fields
        .iter()
        .map(|f| Expr::Column(Column::new_unqualified(f.name())))
        .collect();
    LogicalPlanBuilder::from(recomputed)
        .project(same_order)?
        .union(kept)?
        .build()
}

/// `previous`'s `key` and `columns` (name, type), cast to those types (null where `previous`
/// lacks one): the values of traits a run keeps for every profile without evaluating them.
pub fn previous_columns(
    previous: LogicalPlan,
    key: &str,
    columns: &[(String, datafusion::arrow::datatypes::DataType)],
) -> Result<LogicalPlan> {
    let has = |name: &str| previous.schema().has_column_with_unqualified_name(name);
    let mut exprs = vec![key_text(key).alias(key)];
    for (name, ty) in columns {
        let value = match has(name) {
            true => cast(Expr::Column(Column::new_unqualified(name)), ty.clone()),
            false => cast(lit(ScalarValue::Null), ty.clone()),
        };
        exprs.push(value.alias(name));
    }
    LogicalPlanBuilder::from(previous).project(exprs)?.build()
}

fn key_text(name: &str) -> Expr {
    cast(
        Expr::Column(Column::new_unqualified(name)),
        datafusion::arrow::datatypes::DataType::Utf8,
    )
}

/// The rows of `plan` whose `column` is one of the touched profiles.
pub fn touched_only(plan: LogicalPlan, column: &str, touched: LogicalPlan) -> Result<LogicalPlan> {
    by_touched(
        LogicalPlanBuilder::from(plan),
        column,
        touched,
        JoinType::LeftSemi,
    )?
    .build()
}

/// `plan` semi-joined (`LeftSemi`: only the touched) or anti-joined (`LeftAnti`: all but the
/// touched) with `touched (profile_id)` on `column`.
fn by_touched(
    plan: LogicalPlanBuilder,
    column: &str,
    touched: LogicalPlan,
    join: JoinType,
) -> Result<LogicalPlanBuilder> {
    let touched = LogicalPlanBuilder::from(touched)
        .project(vec![col("profile_id").alias("t_profile_id")])?
        .build()?;
    plan.join_on(
        touched,
        join,
        vec![key_text(column).eq(col("t_profile_id"))],
    )
}

/// Audience members: `now` (of the touched profiles) UNION ALL the previous members
/// `(audience_key, entity_type, profile_id, ...)` that are not touched and still a profile of
/// `profiles`.
pub fn with_kept_members(
    now: LogicalPlan,
    previous: LogicalPlan,
    touched: LogicalPlan,
    profiles: LogicalPlan,
) -> Result<LogicalPlan> {
    let untouched = by_touched(
        LogicalPlanBuilder::from(previous),
        "profile_id",
        touched,
        JoinType::LeftAnti,
    )?
    .build()?;
    with_members_of(now, untouched, profiles)
}

/// `now` UNION ALL the members of `previous` (cast to `now`'s columns) that are still a
/// profile of `profiles`.
pub fn with_members_of(
    now: LogicalPlan,
    previous: LogicalPlan,
    profiles: LogicalPlan,
) -> Result<LogicalPlan> {
    let same: Vec<Expr> = now
        .schema()
        .fields()
        .iter()
        .map(|f| {
            cast(
                Expr::Column(Column::new_unqualified(f.name())),
                f.data_type().clone(),
            )
            .alias(f.name())
        })
        .collect();
    let profiles = LogicalPlanBuilder::from(profiles)
        .project(vec![key_text("profile_id").alias("q_profile_id")])?
        .build()?;
    let kept = LogicalPlanBuilder::from(previous)
        .project(same)?
        .join_on(
            profiles,
            JoinType::LeftSemi,
            vec![key_text("profile_id").eq(col("q_profile_id"))],
        )?
        .build()?;
    LogicalPlanBuilder::from(now).union(kept)?.build()
}
