//! Postgres constructs that client libraries send and DataFusion does not plan, rewritten
//! into ones it does before the statement reaches it:
//!
//! - `a LIKE p ESCAPE 'c'` (SQLAlchemy's `get_schema_names` escapes with `/`): DataFusion
//!   only takes the backslash, so the pattern is translated to backslash escapes by
//!   `cohort_like_escape(p, 'c')`, a function of `sql_compat`.
//! - `generate_subscripts(a, d)` in a select list (SQLAlchemy's key and index reflection,
//!   beside `unnest(a)`): the subscripts are `unnest(generate_series(1, array_length(a, d)))`,
//!   which DataFusion unnests in step with the other `unnest`, as Postgres does.
//! - `typreceive != 0` (a `regproc` against no function): compared with `-`.
//! - `information_schema.columns`: read through `sql_types`, for Postgres' type names.
//! - `information_schema._pg_expandarray(a)` (JDBC's `getPrimaryKeys`, `getIndexInfo`): a
//!   set-returning function of `(x, n)` rows, as `unnest` of a list of such structs.
//! - `ARRAY(subquery)`: the subquery's rows aggregated with `array_agg`; psql's `\d+` one
//!   over `unnest(reloptions)`, which is always null here, as null.
//! - `(expr).field`: `get_field(expr, 'field')`.
//! - A correlated scalar subquery over `pg_*` tables (SQLAlchemy's column reflection):
//!   aggregated with `first_value`, and moved out of a `CASE` into its own `WHERE`.
//!
//! A statement none of these apply to is passed on as the client wrote it.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The name of the function that turns a pattern with its own escape character into one
/// with backslash escapes.
pub(super) const LIKE_ESCAPE: &str = "cohort_like_escape";

/// The function giving an array's elements with their subscripts, as Postgres'
/// `information_schema._pg_expandarray` rows `(x, n)`, a list to unnest.
pub(super) const EXPAND_ARRAY: &str = "cohort_pg_expandarray";

/// Rewrites what applies in `statements`; true when anything changed.
pub(super) fn rewrite(statements: &mut [Statement]) -> bool {
    let mut r = Rewriter { changed: false };
    for s in statements.iter_mut() {
        let _ = s.visit(&mut r);
    }
    r.changed
}

struct Rewriter {
    changed: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(new) = rewritten(expr) {
            *expr = new;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(
        &mut self,
        table: &mut sqlparser::ast::TableFactor,
    ) -> ControlFlow<()> {
        if let Some(new) = information_schema_columns(table) {
            *table = new;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// The rewritten form of one expression, if it needs one.
fn rewritten(expr: &Expr) -> Option<Expr> {
    match expr {
        Expr::Like {
            any: false,
            escape_char: Some(_),
            ..
        }
        | Expr::ILike {
            any: false,
            escape_char: Some(_),
            ..
        } => {
            let mut out = expr.clone();
            if let Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } = &mut out
            {
                let esc = escape_char.take()?;
                **pattern = escaped(pattern, &esc.value)?;
            }
            Some(out)
        }
        Expr::Function(f) => {
            if let Some([array, dim]) = call(f, "generate_subscripts").as_deref() {
                return parse_expr(&format!(
                    "unnest(generate_series(CAST(1 AS BIGINT), CAST(array_length({array}, {dim}) AS BIGINT)))"
                ));
            }
            if let Some([array]) = call(f, "_pg_expandarray").as_deref() {
                return parse_expr(&format!("unnest({EXPAND_ARRAY}({array}))"));
            }
            array_of_subquery(f)
        }
        Expr::BinaryOp { left, op, right } => regproc_zero(left, op, right),
        Expr::CompoundFieldAccess { root, access_chain } => field_access(root, access_chain),
        Expr::Subquery(query) => catalog_lookup(query).map(|q| Expr::Subquery(Box::new(q))),
        Expr::Case {
            operand: None,
            conditions,
            else_result,
            ..
        } => guarded_lookup(conditions, else_result.as_deref()),
        _ => None,
    }
}

/// The unnamed arguments of `f` when it is a call of `name` (in any schema), none of them
/// named.
fn call<'a>(f: &'a sqlparser::ast::Function, name: &str) -> Option<Vec<&'a Expr>> {
    let last = f.name.0.last()?.to_string();
    if !last.trim_matches('"').eq_ignore_ascii_case(name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// `ARRAY(subquery)` as `array_agg` over the subquery's rows (psql's `\d+` one over
/// `unnest(reloptions)` as null, see `unnests_reloptions`).
fn array_of_subquery(f: &sqlparser::ast::Function) -> Option<Expr> {
    if !f.name.to_string().eq_ignore_ascii_case("array") {
        return None;
    }
    let FunctionArguments::Subquery(query) = &f.args else {
        return None;
    };
    if unnests_reloptions(query) {
        return parse_expr("CAST(NULL AS TEXT[])");
    }
    parse_expr(&format!(
        "(SELECT array_agg(_cohort_array._c) FROM ({query}) AS _cohort_array(_c))"
    ))
}

/// `(expr).field`, Postgres' access to a field of a composite value, as `get_field(expr,
/// 'field')`: DataFusion takes the dot only after a column's name (JDBC's `(i.keys).x`).
fn field_access(root: &Expr, chain: &[sqlparser::ast::AccessExpr]) -> Option<Expr> {
    use sqlparser::ast::AccessExpr;
    let Expr::Nested(inner) = root else {
        return None;
    };
    let mut text = inner.to_string();
    for access in chain {
        let AccessExpr::Dot(Expr::Identifier(field)) = access else {
            return None;
        };
        text = format!("get_field({text}, '{}')", field.value.replace('\'', "''"));
    }
    parse_expr(&text)
}

/// `typreceive != 0` and the like: Postgres compares a `regproc` column with the oid 0 (no
/// function), which datafusion-pg-catalog keeps by name, with `-` for none (ADBC's type
/// lookup at connect).
fn regproc_zero(left: &Expr, op: &sqlparser::ast::BinaryOperator, right: &Expr) -> Option<Expr> {
    use sqlparser::ast::BinaryOperator as B;
    const REGPROC: &[&str] = &[
        "typinput",
        "typoutput",
        "typreceive",
        "typsend",
        "typmodin",
        "typmodout",
        "typanalyze",
        "typsubscript",
        "aggfnoid",
        "aggtransfn",
        "aggfinalfn",
        "oprcode",
    ];
    if !matches!(op, B::Eq | B::NotEq) {
        return None;
    }
    let column = match left {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    let zero =
        matches!(right, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "0"));
    if !zero || !REGPROC.contains(&column.to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(Expr::BinaryOp {
        left: Box::new(left.clone()),
        op: op.clone(),
        right: Box::new(parse_expr("'-'")?),
    })
}

/// A scalar subquery that looks a value up in Postgres' catalog (`pg_*` tables), with its
/// one column aggregated by `first_value`: DataFusion plans a correlated scalar subquery only
/// when it is aggregated, and SQLAlchemy's column reflection looks defaults, identity and
/// collation details up that way. Such a lookup finds one row or none, so the value is the
/// same (null for none). Subqueries over a space's own tables are left as written.
fn catalog_lookup(query: &sqlparser::ast::Query) -> Option<sqlparser::ast::Query> {
    use sqlparser::ast::{GroupByExpr, SelectItem, SetExpr, TableFactor};
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty())
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && !select.from.is_empty();
    if !plain {
        return None;
    }
    let catalog = |t: &TableFactor| match t {
        TableFactor::Table {
            name, args: None, ..
        } => name
            .0
            .last()
            .map(|p| p.to_string().trim_matches('"').starts_with("pg_"))
            .unwrap_or(false),
        _ => false,
    };
    let all_catalog = select
        .from
        .iter()
        .all(|f| catalog(&f.relation) && f.joins.iter().all(|j| catalog(&j.relation)));
    let (item, alias) = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] => (e, None),
        [SelectItem::ExprWithAlias { expr, alias }] => (expr, Some(alias)),
        _ => return None,
    };
    if !all_catalog || is_aggregate(item) {
        return None;
    }
    let aggregated = parse_expr(&format!("first_value({item})"))?;
    let mut select = select.as_ref().clone();
    select.projection = vec![match alias {
        Some(alias) => SelectItem::ExprWithAlias {
            expr: aggregated,
            alias: alias.clone(),
        },
        None => SelectItem::UnnamedExpr(aggregated),
    }];
    let mut query = query.clone();
    query.body = Box::new(SetExpr::Select(Box::new(select)));
    Some(query)
}

/// `CASE WHEN c THEN (lookup) [ELSE NULL] END` as `(lookup … WHERE c AND …)`: the same value
/// (no row when `c` does not hold, so null). DataFusion fails to plan such a lookup inside a
/// `CASE` when it reads columns of the outer query in its select list or alone in a
/// condition (SQLAlchemy's identity and default lookups); in a select list,
/// datafusion-postgres answers a correlated lookup with null, which it is here (no column has
/// a default, an identity or a collation of its own). Only for a `first_value` lookup (as
/// `catalog_lookup` made it) and a condition with no subquery of its own.
fn guarded_lookup(
    conditions: &[sqlparser::ast::CaseWhen],
    else_result: Option<&Expr>,
) -> Option<Expr> {
    use sqlparser::ast::SetExpr;
    let [when] = conditions else {
        return None;
    };
    let null_else = match else_result {
        None => true,
        Some(Expr::Value(v)) => matches!(v.value, Value::Null),
        Some(_) => false,
    };
    let Expr::Subquery(query) = &when.result else {
        return None;
    };
    if !null_else
        || when
            .condition
            .to_string()
            .to_ascii_uppercase()
            .contains("SELECT")
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let first_value = matches!(
        select.projection.as_slice(),
        [sqlparser::ast::SelectItem::UnnamedExpr(Expr::Function(f))
            | sqlparser::ast::SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }]
            if f.name.to_string().eq_ignore_ascii_case("first_value")
    );
    if !first_value {
        return None;
    }
    let mut select = select.as_ref().clone();
    let condition = Expr::Nested(Box::new(when.condition.clone()));
    select.selection = Some(match select.selection.take() {
        Some(rest) => Expr::BinaryOp {
            left: Box::new(condition),
            op: sqlparser::ast::BinaryOperator::And,
            right: Box::new(Expr::Nested(Box::new(rest))),
        },
        None => condition,
    });
    let mut query = query.as_ref().clone();
    query.body = Box::new(SetExpr::Select(Box::new(select)));
    Some(Expr::Subquery(Box::new(query)))
}

/// Whether `e` is a call of one of the aggregates catalog queries use.
fn is_aggregate(e: &Expr) -> bool {
    const AGGREGATES: &[&str] = &[
        "count",
        "max",
        "min",
        "sum",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "first_value",
        "json_agg",
    ];
    match e {
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.rsplit('.').next().unwrap_or(&name);
            AGGREGATES.contains(&name)
        }
        _ => false,
    }
}

/// Whether `query` reads the elements of a `reloptions` column (psql's `\d+` lists a
/// table's options with `array(select … from unnest(tc.reloptions) x)`). No table here has
/// options: `pg_class.reloptions` is always null, and so is the array.
fn unnests_reloptions(query: &sqlparser::ast::Query) -> bool {
    let sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let [from] = select.from.as_slice() else {
        return false;
    };
    let text = from.relation.to_string().to_ascii_lowercase();
    from.joins.is_empty() && text.contains("unnest(") && text.contains("reloptions)")
}

/// `pattern` with the escape character `esc` as a pattern with backslash escapes.
fn escaped(pattern: &Expr, esc: &Value) -> Option<Expr> {
    let esc = match esc {
        Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => s,
        _ => return None,
    };
    parse_expr(&format!(
        "{LIKE_ESCAPE}({pattern}, '{}')",
        esc.replace('\'', "''")
    ))
}

/// `information_schema.columns` with Postgres' type names in `data_type` and a `udt_name`
/// (see `sql_types`), under the name the query gave it.
fn information_schema_columns(
    table: &sqlparser::ast::TableFactor,
) -> Option<sqlparser::ast::TableFactor> {
    use sqlparser::ast::{Ident, TableAlias, TableFactor};
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = table
    else {
        return None;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
        .collect();
    let [.., schema, table_name] = parts.as_slice() else {
        return None;
    };
    if schema != "information_schema" || table_name != "columns" {
        return None;
    }
    let (data_type, udt_name) = (super::sql_types::DATA_TYPE, super::sql_types::UDT_NAME);
    let query = format!(
        "SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, \
         column_default, is_nullable, {data_type}(data_type) AS data_type, \
         character_maximum_length, character_octet_length, numeric_precision, \
         numeric_precision_radix, numeric_scale, datetime_precision, interval_type, \
         {udt_name}(data_type) AS udt_name FROM {name}"
    );
    let subquery = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&query)
        .ok()?
        .parse_query()
        .ok()?;
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias.clone().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: Ident::new("columns"),
            columns: vec![],
            at: None,
        })),
        sample: None,
    })
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        match rewrite(&mut statements) {
            true => statements[0].to_string(),
            false => "unchanged".into(),
        }
    }

    #[test]
    fn what_datafusion_cannot_plan_is_rewritten() {
        assert_eq!(
            rewritten("SELECT n FROM t WHERE n NOT LIKE $1 || '%' ESCAPE '/'"),
            "SELECT n FROM t WHERE n NOT LIKE cohort_like_escape($1 || '%', '/')"
        );
        assert_eq!(
            rewritten("SELECT unnest(k) AS a, generate_subscripts(k, 1) AS o FROM pg_index"),
            "SELECT unnest(k) AS a, unnest(generate_series(CAST(1 AS BIGINT), \
             CAST(array_length(k, 1) AS BIGINT))) AS o FROM pg_index"
        );
        assert_eq!(
            rewritten("SELECT oid FROM pg_type WHERE (typreceive != 0 OR t.typsend != 0)"),
            "SELECT oid FROM pg_type WHERE (typreceive <> '-' OR t.typsend <> '-')"
        );
        assert_eq!(
            rewritten("SELECT column_name FROM information_schema.columns c"),
            "SELECT column_name FROM (SELECT table_catalog, table_schema, table_name, \
                 column_name, ordinal_position, column_default, is_nullable, \
                 cohort_pg_data_type(data_type) AS data_type, character_maximum_length, \
                 character_octet_length, numeric_precision, numeric_precision_radix, \
                 numeric_scale, datetime_precision, interval_type, \
                 cohort_pg_udt_name(data_type) AS udt_name FROM information_schema.columns) c"
        );
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(i.indkey)).n FROM pg_index i"),
            "SELECT get_field(unnest(cohort_pg_expandarray(i.indkey)), 'n') FROM pg_index i"
        );
        assert_eq!(
            rewritten("SELECT array(SELECT x FROM s)"),
            "SELECT (SELECT array_agg(_cohort_array._c) FROM (SELECT x FROM s) AS _cohort_array (_c))"
        );
        assert_eq!(
            rewritten("SELECT array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x)"),
            "SELECT CAST(NULL AS TEXT[])"
        );
        // A correlated catalog lookup is aggregated, and taken out of its CASE.
        assert_eq!(
            rewritten(
                "SELECT CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_catalog.pg_attrdef d \
                 WHERE d.adrelid = a.attrelid) ELSE NULL END FROM pg_attribute a"
            ),
            "SELECT (SELECT first_value(d.adbin) FROM pg_catalog.pg_attrdef d \
             WHERE (a.atthasdef) AND (d.adrelid = a.attrelid)) FROM pg_attribute a"
        );
    }

    #[test]
    fn what_datafusion_plans_is_left_as_written() {
        for sql in [
            "SELECT n FROM t WHERE n LIKE 'a%'",
            "SELECT (SELECT max(x) FROM pg_class)",
            // A subquery over a space's own tables keeps Postgres' one-row rule.
            "SELECT (SELECT p.email FROM profiles p WHERE p.id = e.id) FROM events e",
            "SELECT CASE WHEN x THEN 1 ELSE 2 END FROM t",
        ] {
            assert_eq!(rewritten(sql), "unchanged", "{sql}");
        }
    }
}
