//! Integer sums that overflow are an error at the SQL endpoint, not a wrap-around. DataFusion
//! adds 64-bit integers with wrapping arithmetic, so `select sum(value) from range(3e10)`
//! answered a wrong number. An analyzer rule of the endpoint's sessions rewrites every
//! aggregate `sum` over an integer column to sum in 38-digit decimals (which cannot overflow
//! before 2^64 rows) and casts the result back to the column's integer type; that cast
//! refuses a value the type cannot hold, so the query fails with an overflow error.
//! Window sums (`sum(x) OVER (...)`) are left as they are.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, Projection, cast};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule (see the module docs).
#[derive(Debug)]
pub(super) struct CheckedSums;

impl AnalyzerRule for CheckedSums {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(|node| match node {
            LogicalPlan::Aggregate(agg) => checked(agg),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "cohort_checked_integer_sums"
    }
}

/// `agg` with its integer sums taken in decimals, under a projection that casts them back.
fn checked(agg: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let input_schema = agg.input.schema().clone();
    let mut back: Vec<(usize, DataType)> = Vec::new();
    let mut aggr_expr = Vec::with_capacity(agg.aggr_expr.len());
    for (i, e) in agg.aggr_expr.iter().enumerate() {
        match decimal_sum(e, &input_schema)? {
            Some((sum, ty)) => {
                back.push((i, ty));
                aggr_expr.push(sum);
            }
            None => aggr_expr.push(e.clone()),
        }
    }
    if back.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    }
    let first_aggr = agg.schema.fields().len() - agg.aggr_expr.len();
    let summed = Aggregate::try_new(agg.input.clone(), agg.group_expr.clone(), aggr_expr)?;
    let exprs: Vec<Expr> = summed
        .schema
        .iter()
        .enumerate()
        .map(|(j, (qualifier, field))| {
            let col = Expr::Column(Column::from((qualifier, field)));
            match back.iter().find(|(i, _)| first_aggr + i == j) {
                Some((_, ty)) => {
                    cast(col, ty.clone()).alias_qualified(qualifier.cloned(), field.name())
                }
                None => col,
            }
        })
        .collect();
    let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(summed)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

/// `sum(x)` over an integer `x` (possibly aliased) as `sum(CAST(x AS DECIMAL(38, 0)))` under
/// the same name, with the integer type to cast the result back to.
fn decimal_sum(e: &Expr, input: &DFSchema) -> Result<Option<(Expr, DataType)>> {
    let name = e.schema_name().to_string();
    let inner = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(f) = inner else {
        return Ok(None);
    };
    if f.func.name() != "sum" || f.params.args.len() != 1 {
        return Ok(None);
    }
    let ty = inner.get_type(input)?;
    if !ty.is_integer() {
        return Ok(None);
    }
    let mut params = f.params.clone();
    params.args = vec![cast(params.args[0].clone(), DataType::Decimal128(38, 0))];
    let sum = Expr::AggregateFunction(AggregateFunction {
        func: f.func.clone(),
        params,
    });
    let named = match e {
        Expr::Alias(a) => sum.alias_qualified(a.relation.clone(), a.name.clone()),
        _ => sum.alias(name),
    };
    Ok(Some((named, ty)))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::prelude::SessionContext;

    use super::*;

    fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(CheckedSums));
        ctx
    }

    async fn int64s(ctx: &SessionContext, sql: &str) -> Result<Vec<Option<i64>>> {
        let batches = ctx.sql(sql).await?.collect().await?;
        let mut out = Vec::new();
        for b in batches {
            let col = b.column(b.num_columns() - 1);
            assert_eq!(col.data_type(), &DataType::Int64, "{sql}");
            let col = col.as_primitive::<Int64Type>();
            out.extend((0..col.len()).map(|i| col.is_valid(i).then(|| col.value(i))));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn an_integer_sum_that_overflows_fails() {
        let e = int64s(
            &ctx(),
            "SELECT sum(v) FROM (VALUES (9223372036854775807), (1)) AS t(v)",
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("out of range Int64"), "{e}");
        // Without the rule, DataFusion wraps around.
        let wrapped = SessionContext::new()
            .sql("SELECT sum(v) FROM (VALUES (9223372036854775807), (1)) AS t(v)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            wrapped[0].column(0).as_primitive::<Int64Type>().value(0),
            i64::MIN
        );
    }

    #[tokio::test]
    async fn sums_that_fit_keep_their_values_names_and_types() {
        let ctx = ctx();
        assert_eq!(
            int64s(
                &ctx,
                "SELECT g, sum(v) FILTER (WHERE v > 1) AS s FROM \
                 (VALUES (1, 5), (1, 6), (2, 1), (1, -2)) AS t(g, v) GROUP BY g ORDER BY g"
            )
            .await
            .unwrap(),
            vec![Some(11), None]
        );
        let df = ctx
            .sql("SELECT sum(v), sum(DISTINCT v) FROM (VALUES (2), (2), (3)) AS t(v)")
            .await
            .unwrap();
        let names: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["sum(t.v)", "sum(DISTINCT t.v)"]);
        let b = df.collect().await.unwrap();
        assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 7);
        assert_eq!(b[0].column(1).as_primitive::<Int64Type>().value(0), 5);
    }
}
