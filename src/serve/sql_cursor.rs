//! Server-side cursors as psycopg's named cursors (and JDBC's, SQLAlchemy's `stream_results`)
//! use them over the extended protocol. datafusion-postgres runs `DECLARE … CURSOR FOR` and
//! `FETCH`, but (1) ignores the parameters bound to a `DECLARE`, and (2) answers a Describe
//! of the cursor's portal, or of a `FETCH`, with no columns, so rows then arrive that the
//! client has no description for. Here (1) the bound values are written into the statement as
//! literals before it runs, and (2) a Describe of either is answered with the columns of the
//! cursor's query.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser;
use datafusion_postgres::pgwire;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::PgWireResult;
use sqlparser::ast::{Expr, Statement, Value, VisitMut, VisitorMut};

use super::sql::DfStatement;
use super::sql_intake::user_error;

/// The text of the `DECLARE` a portal runs, with its bound parameters written in, when the
/// portal is a `DECLARE` with parameters.
pub(super) fn bound_declare(portal: &Portal<DfStatement>) -> PgWireResult<Option<String>> {
    let Some((Statement::Declare { .. }, _)) = &portal.statement.statement.1 else {
        return Ok(None);
    };
    if portal.parameter_len() == 0 {
        return Ok(None);
    }
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let mut statements =
        sqlparser::parser::Parser::parse_sql(&dialect, &portal.statement.statement.0)
            .map_err(|e| user_error("42601", e.to_string()))?;
    let mut binder = Binder {
        portal,
        error: None,
    };
    for s in statements.iter_mut() {
        let _ = s.visit(&mut binder);
    }
    if let Some(e) = binder.error {
        return Err(e);
    }
    let texts: Vec<String> = statements.iter().map(|s| s.to_string()).collect();
    Ok(Some(texts.join("; ")))
}

/// The query whose columns a Describe of `portal` should answer with: the cursor's own query
/// for a cursor's portal, the named cursor's for a `FETCH`.
pub(super) fn described_query(
    portal: &Portal<DfStatement>,
    cursor: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    match &portal.statement.statement {
        (_, Some((Statement::Fetch { name, .. }, _))) => cursor(&name.value),
        _ => cursor_text(portal),
    }
}

/// The query text of the cursor portal `p` (a cursor's statement is its query, unparsed).
pub(super) fn cursor_text(p: &Portal<DfStatement>) -> Option<String> {
    match &p.statement.statement {
        (sql, None) if is_query(sql) => Some(sql.clone()),
        _ => None,
    }
}

fn is_query(sql: &str) -> bool {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    matches!(
        sqlparser::parser::Parser::parse_sql(&dialect, sql).as_deref(),
        Ok([Statement::Query(_)])
    )
}

/// Replaces `$n` with the portal's n-th bound value as a literal.
struct Binder<'a> {
    portal: &'a Portal<DfStatement>,
    error: Option<pgwire::error::PgWireError>,
}

impl VisitorMut for Binder<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Value(v) = expr else {
            return ControlFlow::Continue(());
        };
        let Value::Placeholder(p) = &v.value else {
            return ControlFlow::Continue(());
        };
        let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
            return ControlFlow::Continue(());
        };
        match literal(self.portal, n.saturating_sub(1)) {
            Ok(text) => {
                match sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                    .try_with_sql(&text)
                    .and_then(|mut p| p.parse_expr())
                {
                    Ok(e) => *expr = e,
                    Err(e) => {
                        self.error = Some(user_error("22P02", e.to_string()));
                        return ControlFlow::Break(());
                    }
                }
            }
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// The SQL literal of the portal's parameter `idx`.
fn literal(portal: &Portal<DfStatement>, idx: usize) -> PgWireResult<String> {
    let raw = match portal.parameters.get(idx) {
        Some(Some(raw)) => raw,
        Some(None) => return Ok("NULL".into()),
        None => {
            return Err(user_error(
                "08P01",
                format!("there is no parameter ${}", idx + 1),
            ));
        }
    };
    let ty = portal
        .statement
        .parameter_types
        .get(idx)
        .cloned()
        .flatten()
        .unwrap_or(Type::UNKNOWN);
    let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let number = |s: String| match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(s),
        _ => Err(user_error(
            "22P02",
            format!("invalid input syntax for type {}: {s:?}", ty.name()),
        )),
    };
    let numeric = [
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::OID,
    ];
    if portal.parameter_format.is_text(idx) {
        let s = String::from_utf8_lossy(raw).to_string();
        return if numeric.contains(&ty) {
            number(s)
        } else if ty == Type::BOOL {
            Ok(match s.as_str() {
                "t" | "true" | "TRUE" | "1" | "on" | "yes" => "TRUE".into(),
                _ => "FALSE".into(),
            })
        } else {
            Ok(quoted(&s))
        };
    }
    // `raw` is there, so each decoded value is too.
    let value = if ty == Type::BOOL {
        portal.parameter::<bool>(idx, &ty)?.map(|b| b.to_string())
    } else if ty == Type::INT2 {
        portal.parameter::<i16>(idx, &ty)?.map(|n| n.to_string())
    } else if ty == Type::INT4 {
        portal.parameter::<i32>(idx, &ty)?.map(|n| n.to_string())
    } else if ty == Type::INT8 {
        portal.parameter::<i64>(idx, &ty)?.map(|n| n.to_string())
    } else if ty == Type::FLOAT4 {
        portal.parameter::<f32>(idx, &ty)?.map(|n| n.to_string())
    } else if ty == Type::FLOAT8 {
        portal.parameter::<f64>(idx, &ty)?.map(|n| n.to_string())
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(&ty) {
        portal.parameter::<String>(idx, &ty)?.map(|s| quoted(&s))
    } else {
        None
    };
    match value {
        Some(v) if ty == Type::FLOAT4 || ty == Type::FLOAT8 => number(v),
        Some(v) => Ok(v),
        None => Err(user_error(
            "0A000",
            format!(
                "a DECLARE's parameter ${} is bound in binary as {}; send it as text",
                idx + 1,
                ty.name()
            ),
        )),
    }
}
