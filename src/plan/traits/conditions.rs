//! Event-level conditions: which events of a chain count (its name, its `where` and its
//! windows), an event's fields as text, and comparisons over one event row (typed against
//! literals, dynamic between two fields).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, Operator, TryCast, col, lit};

use crate::functions::json_get;
use crate::plan::junction::balanced;
use crate::spec::query::ast::{self, Comparator, Filter, Literal, Operand, Span};

use super::{CResult, EventScope, QueryCompileError, Window, err, plan_err};

/// A timestamp literal (UTC micros), comparable with the events' `timestamp`.
pub(crate) fn ts(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some(Arc::from("UTC")),
    ))
}

/// Which events of the chain count: its name, its `where` conditions and its windows.
pub(crate) fn chain_filter(
    chain: &ast::EventChain,
    scope: &EventScope<'_>,
) -> CResult<(Expr, Window)> {
    let as_of = scope.as_of;
    let mut conds = vec![col("event").eq(lit(chain.name.as_str()))];
    let mut window = Window {
        lower: None,
        upper: Some(as_of),
    };
    for f in &chain.filters {
        match f {
            Filter::Where { condition, .. } => conds.push(event_condition(condition, scope)?),
            Filter::Within { window: d, span } => {
                if d.parent {
                    return err(
                        *span,
                        "`within(parent: ...)` belongs to an event inside another event's `where` (a funnel), which computed traits do not support",
                    );
                }
                window = narrow(window, Some(as_of - d.seconds() * 1_000_000), Some(as_of));
            }
            Filter::Between { from, to, span } => {
                if from.parent || to.parent {
                    return err(*span, "`between` is measured from the run's as-of time");
                }
                if from.seconds() > to.seconds() {
                    return err(
                        *span,
                        "`between(A, B)` needs A ≤ B: it selects events between B and A before as-of",
                    );
                }
                window = narrow(
                    window,
                    Some(as_of - to.seconds() * 1_000_000),
                    Some(as_of - from.seconds() * 1_000_000),
                );
            }
            Filter::Since { micros, .. } => window = narrow(window, Some(*micros), None),
        }
    }
    if let Some(l) = window.lower {
        conds.push(col("timestamp").gt(ts(l)));
    }
    if let Some(u) = window.upper {
        conds.push(col("timestamp").lt_eq(ts(u)));
    }
    Ok((crate::plan::junction::all(conds), window))
}

fn narrow(w: Window, lower: Option<i64>, upper: Option<i64>) -> Window {
    Window {
        lower: match (w.lower, lower) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
        upper: match (w.upper, upper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    }
}

/// An event's field as text: `property('a.b')` or `context('a.b')` (and, where the scope
/// allows, the parent's property or the profile's trait).
pub(crate) fn value_expr(o: &Operand, scope: &EventScope<'_>) -> CResult<Expr> {
    match o {
        Operand::Property {
            path,
            parent: false,
            ..
        } => Ok(json_get(col("properties"), path)),
        Operand::Property {
            path, parent: true, ..
        } if scope.parent => Ok(json_get(col("__parent_properties"), path)),
        Operand::Property {
            parent: true, span, ..
        } => err(
            *span,
            "`property(parent: ...)` refers to the parent event of a funnel, which computed traits do not support",
        ),
        Operand::Context { path, .. } => Ok(json_get(col("context"), path)),
        Operand::Trait { key, .. } if scope.traits.is_some() => {
            let used = scope.traits.expect("checked");
            if !used.borrow().contains(key) {
                used.borrow_mut().push(key.clone());
            }
            Ok(col(trait_column(key)))
        }
        other => err(
            other.span(),
            "a reducer takes an event field: `property('name')` or `context('a.b')`",
        ),
    }
}

/// The column a profile's trait is joined onto events under, as text.
pub(crate) fn trait_column(key: &str) -> String {
    format!("__trait_{key}")
}

pub(crate) fn float(e: Expr) -> Expr {
    Expr::TryCast(TryCast::new(Box::new(e), DataType::Float64))
}

/// A `where` condition over one event row.
pub fn event_condition(c: &ast::Expr, scope: &EventScope<'_>) -> CResult<Expr> {
    if let Some(child) = scope.child {
        match c {
            ast::Expr::Value {
                value: Operand::Event(chain),
                ..
            }
            | ast::Expr::Compare {
                left: Operand::Event(chain),
                ..
            } => return child(c, chain),
            _ => {}
        }
    }
    match c {
        ast::Expr::Or { items, .. } => fold(items, scope, Operator::Or),
        ast::Expr::And { items, .. } => fold(items, scope, Operator::And),
        ast::Expr::Not { expr, .. } => {
            // A missing property makes a comparison unknown; NOT of it is false, as in SQL.
            Ok(Expr::Not(Box::new(event_condition(expr, scope)?)))
        }
        ast::Expr::Quantified { span, .. } => err(
            *span,
            "ANY / ALL / NOT ANY combine an account's users; they are for account audiences",
        ),
        ast::Expr::Value { value, span } => match value {
            Operand::Property { .. } | Operand::Context { .. } => {
                Ok(value_expr(value, scope)?.eq(lit("true")))
            }
            Operand::Event(_) => err(
                *span,
                "an event inside `where` is a funnel, which computed traits do not support",
            ),
            _ => err(*span, "a condition compares an event field with a value"),
        },
        ast::Expr::Compare {
            left,
            op,
            right,
            span,
        } => compare(left, *op, right.as_ref(), *span, scope),
    }
}

fn fold(items: &[ast::Expr], scope: &EventScope<'_>, op: Operator) -> CResult<Expr> {
    let conds = items
        .iter()
        .map(|i| event_condition(i, scope))
        .collect::<CResult<Vec<_>>>()?;
    balanced(conds, op).ok_or(QueryCompileError {
        key: None,
        span: Span::default(),
        message: "an empty junction".into(),
    })
}

fn literal_of(o: &Operand, span: Span) -> CResult<&Literal> {
    match o {
        Operand::Literal { value, .. } => Ok(value),
        Operand::Trait { span, .. } => err(
            *span,
            "comparing an event field with a trait is for audiences; computed traits compare with literals",
        ),
        _ => err(span, "compare an event field with a literal value"),
    }
}

pub(crate) fn timestamp_literal(l: &Literal, span: Span) -> CResult<Expr> {
    match l {
        Literal::String(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_micros())
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| {
                        d.and_hms_opt(0, 0, 0)
                            .expect("midnight")
                            .and_utc()
                            .timestamp_micros()
                    })
                });
            match t {
                Ok(t) => Ok(ts(t)),
                Err(_) => err(
                    span,
                    format!("`{s}` is not a date: write 2026-01-31 or an RFC 3339 time"),
                ),
            }
        }
        _ => err(
            span,
            "a date comparison needs a date string, e.g. '2026-01-31'",
        ),
    }
}

pub(crate) fn as_timestamp(e: Expr) -> Expr {
    Expr::TryCast(TryCast::new(
        Box::new(e),
        DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some(Arc::from("UTC")),
        ),
    ))
}

/// Text of a literal as the JSON value's text spelling (`cohort_json_get`'s output).
pub(crate) fn literal_text(l: &Literal) -> Option<String> {
    match l {
        Literal::Int(i) => Some(i.to_string()),
        Literal::Float(f) => Some(f.to_string()),
        Literal::String(s) => Some(s.clone()),
        Literal::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether an operand is a field of an event row (or, in an audience, a trait or a parent's
/// property read on that row) rather than a literal.
fn is_field(o: &Operand, scope: &EventScope<'_>) -> bool {
    match o {
        Operand::Property { .. } | Operand::Context { .. } => true,
        Operand::Trait { .. } => scope.traits.is_some(),
        _ => false,
    }
}

fn compare(
    left: &Operand,
    op: Comparator,
    right: Option<&Operand>,
    span: Span,
    scope: &EventScope<'_>,
) -> CResult<Expr> {
    let as_of = scope.as_of;
    if let Some(r) = right
        && is_field(r, scope)
    {
        if !is_field(left, scope) {
            return err(
                span,
                "put the event field on the left, e.g. property('x') = 'y'",
            );
        }
        return dynamic_compare(value_expr(left, scope)?, op, value_expr(r, scope)?, span);
    }
    let l = value_expr(left, scope)?;
    let right_lit = match right {
        Some(r) => Some(literal_of(r, span)?),
        None => None,
    };
    let need = || -> CResult<&Literal> {
        match right_lit {
            Some(l) => Ok(l),
            None => err(span, "this comparison needs a value on its right"),
        }
    };
    Ok(match op {
        Comparator::Exists => l.is_not_null(),
        Comparator::Absent => l.is_null(),
        Comparator::Eq
        | Comparator::Ne
        | Comparator::Gt
        | Comparator::Ge
        | Comparator::Lt
        | Comparator::Le => {
            let r = need()?;
            let (l, r) = match r {
                Literal::Int(i) => (float(l), lit(*i as f64)),
                Literal::Float(f) => (float(l), lit(*f)),
                Literal::String(s) => (l, lit(s.as_str())),
                Literal::Bool(b) => {
                    if !matches!(op, Comparator::Eq | Comparator::Ne) {
                        return err(span, "booleans compare only with = and !=");
                    }
                    (l, lit(b.to_string()))
                }
                Literal::Null => {
                    return match op {
                        Comparator::Eq => Ok(l.is_null()),
                        Comparator::Ne => Ok(l.is_not_null()),
                        _ => err(span, "null compares only with = and !="),
                    };
                }
                Literal::List(_) | Literal::Duration(_) => {
                    return err(span, "compare with one value; use one_of for a list");
                }
            };
            match op {
                Comparator::Eq => l.eq(r),
                Comparator::Ne => l.not_eq(r),
                Comparator::Gt => l.gt(r),
                Comparator::Ge => l.gt_eq(r),
                Comparator::Lt => l.lt(r),
                _ => l.lt_eq(r),
            }
        }
        Comparator::Contains | Comparator::StartsWith | Comparator::EndsWith => {
            let Some(text) = literal_text(need()?) else {
                return err(span, "this comparison needs a text value");
            };
            let pattern = match op {
                Comparator::Contains => format!("%{}%", escape_like(&text)),
                Comparator::StartsWith => format!("{}%", escape_like(&text)),
                _ => format!("%{}", escape_like(&text)),
            };
            l.like(lit(pattern))
        }
        Comparator::OneOf | Comparator::NoneOf => {
            let Literal::List(items) = need()? else {
                return err(span, "one_of / none_of take a list, e.g. ['a', 'b']");
            };
            let mut texts = Vec::with_capacity(items.len());
            for i in items {
                match literal_text(i) {
                    Some(t) => texts.push(lit(t)),
                    None => return err(span, "list items are numbers, text or booleans"),
                }
            }
            if op == Comparator::OneOf {
                l.in_list(texts, false)
            } else {
                l.clone().is_null().or(l.in_list(texts, true))
            }
        }
        Comparator::BeforeDate => as_timestamp(l).lt(timestamp_literal(need()?, span)?),
        Comparator::AfterDate => as_timestamp(l).gt(timestamp_literal(need()?, span)?),
        Comparator::WithinLast => {
            let Literal::Duration(d) = need()? else {
                return err(span, "within_last takes a duration, e.g. 7 days");
            };
            let t = as_timestamp(l);
            t.clone()
                .gt(ts(as_of - d.seconds() * 1_000_000))
                .and(t.lt_eq(ts(as_of)))
        }
    })
}

pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Two values read from the row (JSON texts): as numbers when both are numbers, else as text.
fn dynamic_compare(l: Expr, op: Comparator, r: Expr, span: Span) -> CResult<Expr> {
    use datafusion::functions::expr_fn::{ends_with, starts_with, strpos};
    let (lf, rf) = (float(l.clone()), float(r.clone()));
    let both = lf.clone().is_not_null().and(rf.clone().is_not_null());
    let pick = |num: Expr, text: Expr| {
        datafusion::logical_expr::when(both.clone(), num)
            .otherwise(text)
            .map_err(|e| plan_err(e, span))
    };
    match op {
        Comparator::Eq => pick(lf.eq(rf), l.eq(r)),
        Comparator::Ne => pick(lf.not_eq(rf), l.not_eq(r)),
        Comparator::Gt => pick(lf.gt(rf), l.gt(r)),
        Comparator::Ge => pick(lf.gt_eq(rf), l.gt_eq(r)),
        Comparator::Lt => pick(lf.lt(rf), l.lt(r)),
        Comparator::Le => pick(lf.lt_eq(rf), l.lt_eq(r)),
        Comparator::Contains => Ok(strpos(l, r).gt(lit(0i32))),
        Comparator::StartsWith => Ok(starts_with(l, r)),
        Comparator::EndsWith => Ok(ends_with(l, r)),
        Comparator::BeforeDate => Ok(as_timestamp(l).lt(as_timestamp(r))),
        Comparator::AfterDate => Ok(as_timestamp(l).gt(as_timestamp(r))),
        _ => err(
            span,
            "this comparator takes a literal on its right (a list, a duration or nothing)",
        ),
    }
}
