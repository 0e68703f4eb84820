//! The plan-level half of writing a run's plans for another engine: before the Unparser sees
//! a plan, the shapes it would get wrong (empty relations, nested joins), the views a run
//! inlines and the source scans a script reads under other names are rewritten. Dialect-free.

use datafusion::arrow::datatypes::Fields;
use datafusion::common::Result;
use datafusion::logical_expr::LogicalPlan;

/// A `VALUES` list (the small tables repairs.yaml makes, see `plan::repairs`), which the
/// Unparser does not write, becomes a `UNION ALL` of one-row `SELECT`s of its literals.
pub(super) fn no_values(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::DFSchema;
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{EmptyRelation, LogicalPlanBuilder, Values, cast};
    plan.transform_up(|p| {
        let LogicalPlan::Values(Values { schema, values }) = &p else {
            return Ok(Transformed::no(p));
        };
        let mut rows: Option<LogicalPlanBuilder> = None;
        for row in values {
            let one = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: true,
                schema: std::sync::Arc::new(DFSchema::empty()),
            });
            let columns = row
                .iter()
                .zip(schema.fields())
                .map(|(e, f)| cast(e.clone(), f.data_type().clone()).alias(f.name()))
                .collect::<Vec<_>>();
            let select = LogicalPlanBuilder::from(one).project(columns)?.build()?;
            rows = Some(match rows {
                Some(r) => r.union(select)?,
                None => LogicalPlanBuilder::from(select),
            });
        }
        match rows {
            Some(r) => Ok(Transformed::yes(r.build()?)),
            None => Ok(Transformed::no(p)),
        }
    })
    .map(|t| t.data)
}

/// An empty relation with columns (a first run's "previous" rows) is unparsed as a `SELECT`
/// of columns from nowhere; it becomes typed nulls filtered out: `SELECT CAST(NULL AS ..)
/// AS "c", ... WHERE false`.
pub(super) fn no_empty_relations(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::common::{DFSchema, ScalarValue};
    use datafusion::logical_expr::{EmptyRelation, LogicalPlanBuilder, cast, lit};
    plan.transform_up(|p| {
        if let LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: false,
            schema,
        }) = &p
            && !schema.fields().is_empty()
        {
            let one = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: true,
                schema: std::sync::Arc::new(DFSchema::empty()),
            });
            let columns = schema
                .fields()
                .iter()
                .map(|f| cast(lit(ScalarValue::Null), f.data_type().clone()).alias(f.name()))
                .collect::<Vec<_>>();
            let typed = LogicalPlanBuilder::from(one)
                .filter(lit(false))?
                .project(columns)?
                .build()?;
            return Ok(Transformed::yes(typed));
        }
        Ok(Transformed::no(p))
    })
    .map(|t| t.data)
}

/// DataFusion 55's Unparser flattens a join whose input is itself a join into one `FROM`
/// list, losing which condition belongs to which join, and drops an aggregate that is a
/// join's input. A projection of every column between the two makes the input a derived
/// table of its own.
pub(super) fn nested_joins_as_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{Expr, Join, Projection};
    use std::sync::Arc;
    let wrap = |p: &Arc<LogicalPlan>| -> Result<Option<Arc<LogicalPlan>>> {
        if !matches!(
            p.as_ref(),
            LogicalPlan::Join(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Union(_)
        ) {
            return Ok(None);
        }
        let columns = p.schema().columns().into_iter().map(Expr::Column).collect();
        Ok(Some(Arc::new(LogicalPlan::Projection(
            Projection::try_new(columns, Arc::clone(p))?,
        ))))
    };
    plan.transform_up(|p| {
        if let LogicalPlan::Join(j) = &p {
            let left = wrap(&j.left)?;
            let right = wrap(&j.right)?;
            if left.is_some() || right.is_some() {
                let j = Join {
                    left: left.unwrap_or_else(|| Arc::clone(&j.left)),
                    right: right.unwrap_or_else(|| Arc::clone(&j.right)),
                    ..j.clone()
                };
                return Ok(Transformed::yes(LogicalPlan::Join(j)));
            }
        }
        Ok(Transformed::no(p))
    })
    .map(|t| t.data)
}

/// Whether two schemas have the same column names: a view read back is the recorded plan with
/// the views it reads inlined in turn, and a source's stage table has other columns than its
/// files, so names tell the tables apart where the plans themselves differ.
fn same_columns(a: &Fields, b: &Fields) -> bool {
    a.iter().map(|f| f.name()).eq(b.iter().map(|f| f.name()))
}

/// Reads of an earlier stage table stay reads of it: DataFusion inlines a view's plan where it
/// is scanned (as a subquery aliased by the view's name); the script made the table before,
/// so the subquery becomes a scan of that table again.
pub(super) fn opaque_views(
    plan: LogicalPlan,
    tables: &[(&str, &LogicalPlan)],
) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::builder::LogicalTableSource;
    use datafusion::logical_expr::{LogicalPlanBuilder, SubqueryAlias};
    plan.transform_down(|p| {
        if let LogicalPlan::SubqueryAlias(SubqueryAlias { input, alias, .. }) = &p
            && alias.schema().is_none()
            && let Some((name, _)) = tables.iter().find(|(n, t)| {
                *n == alias.table() && same_columns(t.schema().fields(), input.schema().fields())
            })
        {
            let source = std::sync::Arc::new(LogicalTableSource::new(std::sync::Arc::new(
                input.schema().as_arrow().clone(),
            )));
            let scan = LogicalPlanBuilder::scan(*name, source, None)?.build()?;
            return Ok(Transformed::new(scan, true, TreeNodeRecursion::Jump));
        }
        Ok(Transformed::no(p))
    })
    .map(|t| t.data)
}

/// A scan of a source's files (not the stage table a run registers under the same name, which
/// has other columns) named like the first of a `raw` pair reads the second:
/// `"web_raw" AS "web"`, so its qualified columns still resolve.
pub(super) fn raw_scans(
    plan: LogicalPlan,
    raw: &[(String, String)],
    tables: &[(&str, &LogicalPlan)],
) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::{LogicalPlanBuilder, TableScan};
    plan.transform_up(|p| {
        if let LogicalPlan::TableScan(scan) = &p
            && let Some((from, to)) = raw.iter().find(|(from, _)| scan.table_name.table() == from)
            && !tables.iter().any(|(name, plan)| {
                *name == from.as_str()
                    && same_columns(plan.schema().fields(), scan.source.schema().fields())
            })
        {
            let renamed = LogicalPlan::TableScan(TableScan {
                table_name: to.as_str().into(),
                ..scan.clone()
            });
            let aliased = LogicalPlanBuilder::from(renamed)
                .alias(from.as_str())?
                .build()?;
            return Ok(Transformed::yes(aliased));
        }
        Ok(Transformed::no(p))
    })
    .map(|t| t.data)
}
