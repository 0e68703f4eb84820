//! Keeps a statement's parameters numbered as the client numbered them. datafusion-postgres
//! types the values bound to a statement by position in the list of placeholders its plan
//! holds; when one of datafusion-pg-catalog's rewrites drops a placeholder (it replaces a
//! correlated subquery in a select list with null, as in SQLAlchemy's column reflection),
//! every later value would be read as the type of the one before it (`cannot parse integer
//! from empty string`). Each dropped `$n` is put back in a filter that is always true.

use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};
use datafusion::sql::sqlparser;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The highest `$n` in `sql` (0 when it has none).
pub(super) fn highest(sql: &str) -> usize {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return 0;
    };
    tokens
        .iter()
        .filter_map(|t| match t {
            Token::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// `plan` (a query's) holding every placeholder `$1` to `$count`, each one it lost in `true OR $n IS
/// NULL` above it.
pub(super) fn keep(plan: LogicalPlan, count: usize) -> datafusion::error::Result<LogicalPlan> {
    if count == 0 {
        return Ok(plan);
    }
    let present = plan.get_parameter_types()?;
    let missing: Vec<Expr> = (1..=count)
        .map(|n| format!("${n}"))
        .filter(|id| !present.contains_key(id))
        .map(|id| Expr::Placeholder(Placeholder::new_with_field(id, None)).is_null())
        .collect();
    if missing.is_empty() {
        return Ok(plan);
    }
    let always = missing.into_iter().fold(lit(true), |acc, e| acc.or(e));
    LogicalPlanBuilder::from(plan).filter(always)?.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropped_placeholders_come_back_and_change_nothing() {
        let ctx = datafusion::prelude::SessionContext::new();
        let sql = "SELECT $1 AS a, $3 AS c";
        assert_eq!(highest(sql), 3);
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        let kept = keep(plan, highest(sql)).unwrap();
        let mut ids: Vec<String> = kept.get_parameter_types().unwrap().into_keys().collect();
        ids.sort();
        assert_eq!(ids, ["$1", "$2", "$3"]);
        let values = datafusion::common::ParamValues::List(vec![
            datafusion::common::ScalarValue::from("x").into(),
            datafusion::common::ScalarValue::from("").into(),
            datafusion::common::ScalarValue::from(7i64).into(),
        ]);
        let bound = kept.replace_params_with_values(&values).unwrap();
        let rows = ctx
            .execute_logical_plan(bound)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows).unwrap();
        assert!(text.to_string().contains("| x | 7 |"), "{text}");
    }
}
