//! A SQL trait's merge into profiles as plans, for a script (`cohort compile --script`): a
//! run merges a SQL trait's rows in memory ([`super::sql_traits`]), a script must say the same
//! steps in SQL.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::JoinType;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, cast as cast_expr};
use datafusion::prelude::{SessionContext, col, lit};

use crate::error::{EngineError, EngineResult};
use crate::identity::new_profile_id;
use crate::plan::identity::{ResolvedRules, occurrences_from_raw};
use crate::run::tables::stage;

/// A SQL trait's merge as plans, for a script (a run merges in memory, above): `query`'s rows
/// keyed by their profile, `(profile_id, <trait columns>)`, and the profiles it starts,
/// `(profile_id, id_type, id_value)`. The same steps as the run: the identity stage's
/// normalization, blocked values left out, the graph's profile else a new one named after the
/// identifier, and per profile the row of the highest-priority, then smallest, identifier.
pub(super) async fn merge_plans(
    ctx: &SessionContext,
    query: LogicalPlan,
    id_col: &str,
    one_type: &ResolvedRules,
    trait_columns: &[String],
) -> EngineResult<(LogicalPlan, LogicalPlan)> {
    use datafusion::functions::core::expr_fn::coalesce;
    use datafusion::functions_window::expr_fn::row_number;
    use datafusion::logical_expr::ExprFunctionExt;
    let key = || cast_expr(col(id_col), DataType::Utf8);
    let raw = LogicalPlanBuilder::from(query.clone())
        .project(vec![
            key().alias("message_id"),
            lit(0i64).alias("timestamp"),
            key().alias("raw_0"),
        ])?
        .build()?;
    let occ = occurrences_from_raw(ctx, raw, one_type)?
        .ok_or_else(|| EngineError::Internal("a SQL trait's identifier type has no path".into()))?;
    let graph = ctx
        .table(stage::ID_IDENTITIES)
        .await?
        .select(vec![
            cast_expr(col("profile_id"), DataType::Utf8).alias("g_profile_id"),
            cast_expr(col("id_type"), DataType::Utf8).alias("g_type"),
            cast_expr(col("id_value"), DataType::Utf8).alias("g_value"),
        ])?
        .into_unoptimized_plan();
    let profile = coalesce(vec![col("g_profile_id"), id_profile(col("node"))]);
    let pick = row_number()
        .partition_by(vec![col("m_profile")])
        .order_by(vec![
            col("rank").sort(true, false),
            col("id_value").sort(true, false),
        ])
        .build()?
        .alias("m_pick");
    let picked = LogicalPlanBuilder::from(occ)
        .filter(col("violation").is_null())?
        .join(
            graph,
            JoinType::Left,
            (vec!["id_type", "id_value"], vec!["g_type", "g_value"]),
            None,
        )?
        .project(vec![
            col("message_id").alias("m_key"),
            col("id_type"),
            col("id_value"),
            col("rank"),
            col("g_profile_id").is_null().alias("m_new"),
            profile.alias("m_profile"),
        ])?
        .window(vec![pick])?
        .filter(col("m_pick").eq(lit(1u64)))?
        .build()?;
    let started = LogicalPlanBuilder::from(picked.clone())
        .filter(col("m_new"))?
        .project(vec![
            col("m_profile").alias("profile_id"),
            col("id_type"),
            col("id_value"),
        ])?
        .build()?;
    let mut out = vec![col("m_profile").alias("profile_id")];
    out.extend(trait_columns.iter().map(|c| col(c.as_str())));
    let merged = LogicalPlanBuilder::from(picked)
        .join_on(query, JoinType::Inner, vec![col("m_key").eq(key())])?
        .project(out)?
        .build()?;
    Ok((merged, started))
}

/// `cohort_id_profile(node)`: the name of a profile started by identifier `node`
/// ([`new_profile_id`]). The script defines the same function in its engine.
fn id_profile(node: datafusion::prelude::Expr) -> datafusion::prelude::Expr {
    static UDF: std::sync::LazyLock<Arc<datafusion::logical_expr::ScalarUDF>> =
        std::sync::LazyLock::new(|| {
            Arc::new(datafusion::logical_expr::create_udf(
                "cohort_id_profile",
                vec![DataType::Int64],
                DataType::Utf8,
                datafusion::logical_expr::Volatility::Immutable,
                Arc::new(|args: &[datafusion::logical_expr::ColumnarValue]| {
                    let arrays = datafusion::logical_expr::ColumnarValue::values_to_arrays(args)?;
                    let nodes = arrays[0].as_primitive::<Int64Type>();
                    let names: StringArray = nodes.iter().map(|n| n.map(new_profile_id)).collect();
                    Ok(datafusion::logical_expr::ColumnarValue::Array(Arc::new(
                        names,
                    )))
                }),
            ))
        });
    UDF.call(vec![node])
}
