//! Cohort's plans in another engine's SQL: unparses a plan for DuckDB or PostgreSQL and
//! rewrites what only Cohort's session has (its functions, its aggregates, the names of the
//! source scans) into that engine's own SQL, plus the few helper functions a script defines
//! first ([`prelude`]).

use datafusion::arrow::datatypes::Fields;
use datafusion::common::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast;

use super::unparse::SqlDialect;

/// Statements that define the helpers the rewritten SQL calls, run first.
pub fn prelude(dialect: SqlDialect) -> Vec<String> {
    let text: &str = match dialect {
        SqlDialect::Postgres => include_str!("../../queries/script/prelude_postgres.sql"),
        _ => include_str!("../../queries/script/prelude_duckdb.sql"),
    };
    text.split("\n;\n")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `plan` as SQL in `dialect`; scans named like the first of a `raw` pair read the second,
/// and the earlier stage tables `tables` (name, plan) are read by name.
pub fn plan_sql(
    plan: &LogicalPlan,
    dialect: SqlDialect,
    raw: &[(String, String)],
    tables: &[(&str, &LogicalPlan)],
) -> Result<String> {
    let plan =
        nested_joins_as_subqueries(no_empty_relations(opaque_views(plan.clone(), tables)?)?)?;
    tracing::debug!("script plan:\n{}", plan.display_indent());
    let plan = raw_scans(plan, raw, tables)?;
    let mut stmt = super::unparse::plan_statement(&plan, dialect)?;
    alias_derived_tables(&mut stmt);
    rewrite_functions(&mut stmt, dialect);
    Ok(stmt.to_string())
}

/// An empty relation with columns (a first run's "previous" rows) is unparsed as a `SELECT`
/// of columns from nowhere; it becomes typed nulls filtered out: `SELECT CAST(NULL AS ..)
/// AS "c", ... WHERE false`.
fn no_empty_relations(plan: LogicalPlan) -> Result<LogicalPlan> {
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
fn nested_joins_as_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
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
fn opaque_views(plan: LogicalPlan, tables: &[(&str, &LogicalPlan)]) -> Result<LogicalPlan> {
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
fn raw_scans(
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

/// SQL text placed into the tree as is (it prints verbatim), in parentheses.
fn raw_expr(sql: String) -> ast::Expr {
    ast::Expr::Identifier(ast::Ident::new(format!("({sql})")))
}

/// The plain arguments of a call, and its `ORDER BY` clause if any.
fn call_args(f: &ast::Function) -> (Vec<ast::Expr>, Vec<ast::OrderByExpr>) {
    let mut out = Vec::new();
    let mut order = Vec::new();
    if let ast::FunctionArguments::List(list) = &f.args {
        for a in &list.args {
            if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a {
                out.push(e.clone());
            }
        }
        for c in &list.clauses {
            if let ast::FunctionArgumentClause::OrderBy(o) = c {
                order = o.clone();
            }
        }
    }
    (out, order)
}

/// The text of a string literal argument.
fn literal(e: &ast::Expr) -> Option<String> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Every key sequence a Segment path may be found under, in the order `cohort_json_get`
/// tries them: each segment as a key, else a run of segments joined by `_` (a flattened key).
fn key_sequences(segs: &[&str]) -> Vec<Vec<String>> {
    if segs.is_empty() {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for i in 0..segs.len() {
        let head = segs[..=i].join("_");
        for mut rest in key_sequences(&segs[i + 1..]) {
            rest.insert(0, head.clone());
            out.push(rest);
        }
    }
    out
}

/// `cohort_json_get(json, 'a.b')` in `dialect`: the value at the first key sequence found,
/// as text (strings unquoted).
fn json_get(dialect: SqlDialect, json: &str, path: &str) -> String {
    let segs: Vec<&str> = path.split('.').collect();
    let tries: Vec<String> = key_sequences(&segs)
        .into_iter()
        .map(|keys| match dialect {
            SqlDialect::Postgres => {
                let p = keys
                    .iter()
                    .map(|k| format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect::<Vec<_>>()
                    .join(",");
                format!("(({json})::jsonb #>> {})", sql_string(&format!("{{{p}}}")))
            }
            _ => {
                let p = keys
                    .iter()
                    .map(|k| format!(".\"{}\"", k.replace('"', "\\\"")))
                    .collect::<String>();
                format!(
                    "json_extract_string({json}, {})",
                    sql_string(&format!("${p}"))
                )
            }
        })
        .collect();
    if tries.len() == 1 {
        tries.into_iter().next().unwrap_or_default()
    } else {
        format!("COALESCE({})", tries.join(", "))
    }
}

/// Rewrites Cohort's functions (and the DataFusion spellings the dialect lacks) into SQL the
/// dialect runs; the helpers it calls are defined by [`prelude`].
fn rewrite_functions(stmt: &mut ast::Statement, dialect: SqlDialect) {
    use std::ops::ControlFlow;
    let pg = dialect == SqlDialect::Postgres;
    let _ = ast::visit_expressions_mut(stmt, |e| {
        // A field of the parsed-once JSON struct: back to a lookup of the column itself.
        if let ast::Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && let Some(column) = parts[0].value.strip_prefix("__json_")
        {
            let j = format!("\"{column}\"");
            *e = raw_expr(json_get(dialect, &j, &parts[1].value));
            return ControlFlow::<()>::Continue(());
        }
        // PostgreSQL has no TRY_CAST: the prelude's cohort_try_cast does it.
        if pg
            && let ast::Expr::Cast {
                kind: ast::CastKind::TryCast | ast::CastKind::SafeCast,
                expr,
                data_type,
                ..
            } = e
        {
            *e = raw_expr(format!(
                "cohort_try_cast(({expr})::text, NULL::{data_type})"
            ));
            return ControlFlow::Continue(());
        }
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let name = f.name.to_string().to_lowercase();
        let (args, order) = call_args(f);
        let a: Vec<String> = args.iter().map(|x| x.to_string()).collect();
        let filter = f
            .filter
            .as_ref()
            .map(|w| format!(" FILTER (WHERE {w})"))
            .unwrap_or_default();
        // The call's ORDER BY as written, or each direction turned around.
        let ordered = |flip: bool| {
            order
                .iter()
                .map(|o| {
                    let desc = (o.options.asc == Some(false)) != flip;
                    format!("{} {}", o.expr, if desc { "DESC" } else { "ASC" })
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let new = match name.as_str() {
            "cohort_json_paths" => Some("NULL".to_string()),
            "cohort_json_get" if a.len() == 2 => {
                literal(&args[1]).map(|p| json_get(dialect, &a[0], &p))
            }
            "cohort_json_valid" if !pg => Some(format!(
                "CASE WHEN {0} IS NULL THEN true WHEN json_valid({0}) THEN json_type({0}) = \
                 'OBJECT' ELSE false END",
                a[0]
            )),
            "cohort_json_object" if a.len().is_multiple_of(2) => Some(if pg {
                format!(
                    "json_strip_nulls(json_build_object({}))::text",
                    a.join(", ")
                )
            } else {
                // A merge patch drops the members whose value is null.
                format!(
                    "json_merge_patch('{{}}', json_object({}))::VARCHAR",
                    a.join(", ")
                )
            }),
            "first_value" | "last_value" if !order.is_empty() => {
                let by = ordered(name == "last_value");
                Some(format!("(array_agg({} ORDER BY {by}){filter})[1]", a[0]))
            }
            "cohort_first" | "cohort_last" if a.len() == 3 => {
                let dir = if name == "cohort_first" {
                    "ASC"
                } else {
                    "DESC"
                };
                Some(format!(
                    "(array_agg({} ORDER BY {} {dir}, {} {dir}) FILTER (WHERE {} IS NOT NULL{}))[1]",
                    a[0],
                    a[1],
                    a[2],
                    a[1],
                    f.filter
                        .as_ref()
                        .map(|w| format!(" AND ({w})"))
                        .unwrap_or_default()
                ))
            }
            "cohort_mode" if a.len() == 2 => Some(format!(
                "cohort_mode_pick(array_agg({}){filter}, {})",
                a[0], a[1]
            )),
            "cohort_unique" if a.len() == 1 => Some(format!(
                "cohort_sorted_distinct(array_agg({}){filter})",
                a[0]
            )),
            "cohort_unique_count" if a.len() == 1 => {
                Some(format!("count(DISTINCT {}){filter}", a[0]))
            }
            "regexp_like" if a.len() == 2 => Some(if pg {
                format!("{} ~ {}", a[0], a[1])
            } else {
                format!("regexp_matches({}, {})", a[0], a[1])
            }),
            // The message-id check looks for a NUL character. No SQL text may carry one, and
            // PostgreSQL text cannot hold one at all (so no message id there has one).
            "strpos" if a.len() == 2 && literal(&args[1]).as_deref() == Some("\0") => Some(if pg {
                "0".to_string()
            } else {
                format!("strpos({}, chr(0))", a[0])
            }),
            "btrim" if !pg => Some(format!("trim({})", a.join(", "))),
            "array_sort" if !a.is_empty() => Some(if pg {
                format!("cohort_sorted_distinct({})", a[0])
            } else {
                format!("list_sort({})", a.join(", "))
            }),
            _ => None,
        };
        if let Some(sql) = new {
            *e = raw_expr(sql);
        }
        ControlFlow::Continue(())
    });
}

/// DataFusion's Unparser writes `SELECT "t"."a" FROM (SELECT ...)`: the derived table keeps
/// no alias while its readers still name it. Each such derived table gets the one qualifier
/// its `SELECT` uses.
fn alias_derived_tables(stmt: &mut ast::Statement) {
    use std::collections::BTreeSet;
    use std::ops::ControlFlow;
    struct Aliaser;
    fn qualifiers(select: &ast::Select) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut look = |e: &ast::Expr| {
            let _ = ast::visit_expressions(e, |x| {
                if let ast::Expr::CompoundIdentifier(p) = x
                    && p.len() == 2
                {
                    out.insert(p[0].value.clone());
                }
                ControlFlow::<()>::Continue(())
            });
        };
        for item in &select.projection {
            match item {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => look(e),
                _ => {}
            }
        }
        if let Some(w) = &select.selection {
            look(w);
        }
        if let ast::GroupByExpr::Expressions(es, _) = &select.group_by {
            for e in es {
                look(e);
            }
        }
        if let Some(h) = &select.having {
            look(h);
        }
        out
    }
    fn fix(body: &mut ast::SetExpr) {
        match body {
            ast::SetExpr::Select(select) => {
                if let Some(wrapped) = filter_on_outputs(select) {
                    *body = wrapped;
                    return;
                }
                let mut qs = qualifiers(select);
                // Qualifiers of join conditions count too; names of the FROM's own relations
                // (and their aliases) are not missing.
                for t in &select.from {
                    for j in &t.joins {
                        let c = match &j.join_operator {
                            ast::JoinOperator::Join(c)
                            | ast::JoinOperator::Inner(c)
                            | ast::JoinOperator::Left(c)
                            | ast::JoinOperator::LeftOuter(c)
                            | ast::JoinOperator::Right(c)
                            | ast::JoinOperator::RightOuter(c)
                            | ast::JoinOperator::FullOuter(c)
                            | ast::JoinOperator::LeftSemi(c)
                            | ast::JoinOperator::LeftAnti(c) => Some(c),
                            _ => None,
                        };
                        if let Some(ast::JoinConstraint::On(e)) = c {
                            let _ = ast::visit_expressions(e, |x| {
                                if let ast::Expr::CompoundIdentifier(p) = x
                                    && p.len() == 2
                                {
                                    qs.insert(p[0].value.clone());
                                }
                                ControlFlow::<()>::Continue(())
                            });
                        }
                    }
                }
                // The Unparser's own names for derived tables (PostgreSQL wants one) that no
                // column uses are dropped, and named below like the others.
                for t in &mut select.from {
                    let factors = std::iter::once(&mut t.relation)
                        .chain(t.joins.iter_mut().map(|j| &mut j.relation));
                    for f in factors {
                        if let ast::TableFactor::Derived { alias, .. } = f
                            && alias.as_ref().is_some_and(|a| {
                                a.name.value.starts_with("derived_")
                                    && a.name.value != "derived_window_input"
                                    && !qs.contains(&a.name.value)
                            })
                        {
                            *alias = None;
                        }
                    }
                }
                // Names the FROM already gives its relations.
                let mut named = BTreeSet::new();
                let mut unaliased = 0;
                for t in &select.from {
                    for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation))
                    {
                        match f {
                            ast::TableFactor::Table { name, alias, .. } => {
                                match alias {
                                    Some(a) => named.insert(a.name.value.clone()),
                                    None => named.insert(
                                        name.0
                                            .last()
                                            .and_then(|p| p.as_ident())
                                            .map(|i| i.value.clone())
                                            .unwrap_or_default(),
                                    ),
                                };
                            }
                            ast::TableFactor::Derived { alias: Some(a), .. } => {
                                named.insert(a.name.value.clone());
                            }
                            ast::TableFactor::Derived { alias: None, .. } => unaliased += 1,
                            _ => {}
                        }
                    }
                }
                qs.retain(|q| !named.contains(q));
                // A lone derived table takes the one qualifier its readers miss; otherwise
                // each takes the qualifier its own plain columns keep (DataFusion keeps a
                // column's qualifier through a projection), else a fresh name (PostgreSQL
                // wants every derived table named).
                let lone = (unaliased == 1 && qs.len() == 1).then(|| qs.iter().next().cloned());
                for t in &mut select.from {
                    let factors = std::iter::once(&mut t.relation)
                        .chain(t.joins.iter_mut().map(|j| &mut j.relation));
                    for f in factors {
                        if let ast::TableFactor::Derived {
                            alias, subquery, ..
                        } = f
                            && alias.is_none()
                        {
                            let own = output_qualifier(subquery).filter(|q| !named.contains(q));
                            let name = match (&lone, own) {
                                (Some(Some(q)), _) => q.clone(),
                                (_, Some(q)) => q,
                                _ => {
                                    let mut n = named.len();
                                    while named.contains(&format!("_t{n}")) {
                                        n += 1;
                                    }
                                    format!("_t{n}")
                                }
                            };
                            named.insert(name.clone());
                            *alias = Some(ast::TableAlias {
                                explicit: true,
                                name: ast::Ident::with_quote('"', name),
                                columns: vec![],
                                at: None,
                            });
                        }
                    }
                }
            }
            ast::SetExpr::SetOperation { left, right, .. } => {
                fix(left);
                fix(right);
            }
            ast::SetExpr::Query(q) => fix(&mut q.body),
            _ => {}
        }
    }
    /// The Unparser filters on names its own select list gives (`SELECT lower(x) AS "v" ...
    /// WHERE "v" IS NOT NULL`), which DuckDB accepts and PostgreSQL does not: such a select
    /// becomes `SELECT * FROM (<it without WHERE>) AS "_w" WHERE ...`, the filter reading the
    /// output columns by name. Selects that group, or filter with a subquery, stay as they are.
    fn filter_on_outputs(select: &ast::Select) -> Option<ast::SetExpr> {
        let w = select.selection.as_ref()?;
        if select.having.is_some()
            || select.qualify.is_some()
            || !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
        {
            return None;
        }
        let mut outputs = BTreeSet::new();
        let mut renamed = BTreeSet::new();
        for item in &select.projection {
            match item {
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    outputs.insert(alias.value.clone());
                    let same = match expr {
                        ast::Expr::Identifier(i) => i.value == alias.value,
                        ast::Expr::CompoundIdentifier(p) => {
                            p.last().is_some_and(|i| i.value == alias.value)
                        }
                        _ => false,
                    };
                    if !same {
                        renamed.insert(alias.value.clone());
                    }
                }
                ast::SelectItem::UnnamedExpr(ast::Expr::Identifier(i)) => {
                    outputs.insert(i.value.clone());
                }
                ast::SelectItem::UnnamedExpr(ast::Expr::CompoundIdentifier(p)) => {
                    outputs.insert(p.last()?.value.clone());
                }
                _ => return None,
            }
        }
        // The conjuncts on renamed outputs move out; the others stay where they are.
        fn conjuncts(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
            match e {
                ast::Expr::BinaryOp {
                    left,
                    op: ast::BinaryOperator::And,
                    right,
                } => {
                    conjuncts(left, out);
                    conjuncts(right, out);
                }
                ast::Expr::Nested(inner) => conjuncts(inner, out),
                e => out.push(e.clone()),
            }
        }
        let mut all = Vec::new();
        conjuncts(w, &mut all);
        let (mut outer_part, mut inner_part) = (Vec::new(), Vec::new());
        for c in all {
            let mut uses_renamed = false;
            let mut readable = true;
            let _ = ast::visit_expressions(&c, |x| {
                match x {
                    ast::Expr::Identifier(i) => {
                        uses_renamed |= renamed.contains(&i.value);
                        readable &= outputs.contains(&i.value);
                    }
                    ast::Expr::CompoundIdentifier(p) => {
                        readable &= p.last().is_some_and(|i| outputs.contains(&i.value));
                    }
                    ast::Expr::Exists { .. }
                    | ast::Expr::InSubquery { .. }
                    | ast::Expr::Subquery(_) => {
                        readable = false;
                    }
                    _ => {}
                }
                ControlFlow::<()>::Continue(())
            });
            match (uses_renamed, readable) {
                (false, _) => inner_part.push(c),
                (true, true) => outer_part.push(c),
                (true, false) => return None,
            }
        }
        if outer_part.is_empty() {
            return None;
        }
        let and = |parts: Vec<ast::Expr>| {
            parts.into_iter().reduce(|l, r| ast::Expr::BinaryOp {
                left: Box::new(l),
                op: ast::BinaryOperator::And,
                right: Box::new(r),
            })
        };
        let mut filter = and(outer_part)?;
        let _ = ast::visit_expressions_mut(&mut filter, |x| {
            if let ast::Expr::CompoundIdentifier(p) = x
                && let Some(last) = p.last()
            {
                *x = ast::Expr::Identifier(last.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let mut inner = select.clone();
        inner.selection = and(inner_part);
        let template = "SELECT * FROM (SELECT 1) AS \"_w\" WHERE true";
        let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
            template,
        )
        .ok()?;
        let ast::Statement::Query(mut q) = parsed.into_iter().next()? else {
            return None;
        };
        let ast::SetExpr::Select(outer) = q.body.as_mut() else {
            return None;
        };
        if let ast::TableFactor::Derived { subquery, .. } = &mut outer.from.first_mut()?.relation {
            *subquery.body = ast::SetExpr::Select(Box::new(inner));
        }
        outer.selection = Some(filter);
        Some(*q.body)
    }
    /// The one qualifier the plain (unaliased) columns of `q`'s select list carry, if one.
    fn output_qualifier(q: &ast::Query) -> Option<String> {
        let ast::SetExpr::Select(select) = q.body.as_ref() else {
            return None;
        };
        let mut found = BTreeSet::new();
        for item in &select.projection {
            if let ast::SelectItem::UnnamedExpr(ast::Expr::CompoundIdentifier(p)) = item
                && p.len() == 2
            {
                found.insert(p[0].value.clone());
            }
        }
        (found.len() == 1)
            .then(|| found.into_iter().next())
            .flatten()
    }
    impl ast::VisitorMut for Aliaser {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<()> {
            fix(&mut q.body);
            ControlFlow::Continue(())
        }
    }
    let _ = ast::VisitMut::visit(stmt, &mut Aliaser);
}
