//! Computed traits to ONE aggregation plan: every trait of an entity type becomes a column of
//! a single `GROUP BY entity` over the events, with its event name, filters and window as the
//! aggregate's `FILTER`, instead of a query per trait.
//!
//! Result types are fixed by the reducer, so they are stable from run to run whatever the data
//! holds: `count` and `unique(..).count()` int64; `sum`, `avg`, `min`, `max` float64 (a value
//! that is not a number is ignored); `mode`, `first`, `last` utf8; `unique` list<utf8>, sorted.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, Operator, TryCast, col, lit,
};

use super::junction::balanced;
use crate::functions::aggregates;
use crate::functions::{as_json_get, json_get, json_paths};
use crate::spec::query::ast::{self, Comparator, Filter, Literal, Operand, ReducerKind, Span};
use datafusion::functions::core::expr_fn::get_field;

/// A problem in a query that parsed but cannot be compiled, at a span of the query text.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryCompileError {
    /// The computed trait whose query it is, when several are compiled together.
    pub key: Option<String>,
    pub span: Span,
    pub message: String,
}

pub(crate) type CResult<T> = Result<T, QueryCompileError>;

pub(crate) fn err<T>(span: Span, message: impl Into<String>) -> CResult<T> {
    Err(QueryCompileError {
        key: None,
        span,
        message: message.into(),
    })
}

/// One computed trait's column in the fused plan.
#[derive(Clone, Debug, PartialEq)]
pub struct TraitColumn {
    pub key: String,
    pub reducer: ReducerKind,
    pub data_type: DataType,
}

/// A computed trait to compile: its key and parsed query.
pub struct TraitQuery<'a> {
    pub key: &'a str,
    pub query: &'a ast::Expr,
}

/// Where the aggregates read two or more paths of one JSON column, parses that column once
/// per row: a projection adds `__json_<column>` = `cohort_json_paths(<column>, paths...)` and
/// each `cohort_json_get(<column>, path)` becomes a field of it. Returns the projection's new
/// expressions and the rewritten aggregates.
pub(crate) fn share_json_parsing(
    aggs: Vec<Expr>,
) -> datafusion::common::Result<(Vec<Expr>, Vec<Expr>)> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    use std::collections::BTreeMap;
    let mut paths: BTreeMap<datafusion::common::Column, Vec<String>> = BTreeMap::new();
    for a in &aggs {
        a.apply(|e| {
            if let Some((c, p)) = as_json_get(e) {
                let ps = paths.entry(c.clone()).or_default();
                if !ps.iter().any(|x| x == p) {
                    ps.push(p.to_string());
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    paths.retain(|_, ps| ps.len() >= 2);
    if paths.is_empty() {
        return Ok((Vec::new(), aggs));
    }
    let name = |c: &datafusion::common::Column| format!("__json_{}", c.name);
    let aggs = aggs
        .into_iter()
        .map(|a| {
            a.transform_up(|e| match as_json_get(&e) {
                Some((c, p)) if paths.contains_key(c) => {
                    let field = get_field(col(name(c)), p.to_string());
                    Ok(Transformed::yes(field))
                }
                _ => Ok(Transformed::no(e)),
            })
            .map(|t| t.data)
        })
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    let parsed = paths
        .iter()
        .map(|(c, ps)| json_paths(Expr::Column(c.clone()), ps).alias(name(c)))
        .collect();
    Ok((parsed, aggs))
}

/// The result type of a reducer.
pub fn reducer_type(kind: ReducerKind) -> DataType {
    match kind {
        ReducerKind::Count | ReducerKind::UniqueCount => DataType::Int64,
        ReducerKind::Sum | ReducerKind::Avg | ReducerKind::Min | ReducerKind::Max => {
            DataType::Float64
        }
        ReducerKind::Mode | ReducerKind::First | ReducerKind::Last => DataType::Utf8,
        ReducerKind::Unique => {
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
        }
    }
}

/// The value a profile with no matching events gets: 0 for counts, null otherwise.
pub fn empty_value(kind: ReducerKind) -> Option<Expr> {
    match kind {
        ReducerKind::Count | ReducerKind::UniqueCount => Some(lit(0i64)),
        _ => None,
    }
}

/// Where an event chain's events are, in time: `lower < timestamp <= upper` (micros).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Window {
    pub lower: Option<i64>,
    pub upper: Option<i64>,
}

/// What an event-level condition (a `where`) may read besides the event's own fields.
pub struct EventScope<'a> {
    /// The run's as-of time (UTC micros).
    pub as_of: i64,
    /// In a funnel's child: `property(parent: 'x')` reads the parent's `__parent_properties`
    /// column (and `__parent_context`).
    pub parent: bool,
    /// Audiences: `trait('k')` reads the column `__trait_<k>` (the profile's trait as text)
    /// joined onto the events; the keys read are recorded here.
    pub traits: Option<&'a std::cell::RefCell<Vec<String>>>,
    /// A funnel's parent: compiles a whole comparison on a child `event(...)` (or a bare child
    /// chain) into a condition over the parent's row.
    #[allow(clippy::type_complexity)]
    pub child: Option<&'a dyn Fn(&ast::Expr, &ast::EventChain) -> CResult<Expr>>,
}

impl EventScope<'_> {
    /// A computed trait's scope: the event's own fields and literals only.
    pub fn new(as_of: i64) -> EventScope<'static> {
        EventScope {
            as_of,
            parent: false,
            traits: None,
            child: None,
        }
    }
}

/// Compiles `traits` into one aggregation over `events`, grouped by `entity` (a column of
/// `events`, e.g. `profile_id`). `events` needs `event`, `timestamp`, `message_id`,
/// `properties` and `context`. The plan's columns: `entity`, then one per trait, named by key.
pub fn computed_traits_plan(
    events: LogicalPlan,
    entity: &str,
    traits: &[TraitQuery<'_>],
    as_of_micros: i64,
) -> CResult<(LogicalPlan, Vec<TraitColumn>)> {
    let mut aggs = Vec::with_capacity(traits.len());
    let mut columns = Vec::with_capacity(traits.len());
    let mut names: Vec<String> = Vec::new();
    // The widest window over every trait: events outside it are not read further.
    let mut widest: Option<i64> = Some(i64::MAX);
    for t in traits {
        let with_key = |mut e: QueryCompileError| {
            e.key = Some(t.key.to_string());
            e
        };
        let (chain, reducer) = trait_chain(t.query).map_err(with_key)?;
        let (matches, window) =
            chain_filter(chain, &EventScope::new(as_of_micros)).map_err(with_key)?;
        widest = match (widest, window.lower) {
            (Some(w), Some(l)) => Some(w.min(l)),
            _ => None,
        };
        if !names.contains(&chain.name) {
            names.push(chain.name.clone());
        }
        let value = match &reducer.arg {
            Some(arg) => Some(value_expr(arg, &EventScope::new(as_of_micros)).map_err(with_key)?),
            None => None,
        };
        let e = reducer_aggregate(reducer, value, matches).map_err(with_key)?;
        aggs.push(e.alias(t.key));
        columns.push(TraitColumn {
            key: t.key.to_string(),
            reducer: reducer.kind,
            data_type: reducer_type(reducer.kind),
        });
    }
    let mut pre = col("event").in_list(names.iter().map(|n| lit(n.as_str())).collect(), false);
    pre = pre.and(col("timestamp").lt_eq(ts(as_of_micros)));
    if let Some(lower) = widest.filter(|w| *w != i64::MAX) {
        pre = pre.and(col("timestamp").gt(ts(lower)));
    }
    let inputs: Vec<Expr> = events
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let (parsed, aggs) = share_json_parsing(aggs).map_err(|e| QueryCompileError {
        key: None,
        span: Span::default(),
        message: format!("cannot plan the computed traits: {e}"),
    })?;
    let plan = LogicalPlanBuilder::from(events)
        .filter(col(entity).is_not_null().and(pre))
        .and_then(|b| {
            if parsed.is_empty() {
                Ok(b)
            } else {
                b.project(inputs.into_iter().chain(parsed))
            }
        })
        .and_then(|b| b.aggregate(vec![col(entity)], aggs))
        .and_then(|b| b.build())
        .map_err(|e| QueryCompileError {
            key: None,
            span: Span::default(),
            message: format!("cannot plan the computed traits: {e}"),
        })?;
    Ok((plan, columns))
}

/// The event chain and reducer of a computed trait's query (the parser guarantees the shape).
fn trait_chain(q: &ast::Expr) -> CResult<(&ast::EventChain, &ast::Reducer)> {
    match q {
        ast::Expr::Value {
            value: Operand::Event(chain),
            span,
        } => match &chain.reducer {
            Some(r) => Ok((chain, r)),
            None => err(*span, "a computed trait needs a reducer, e.g. `.count()`"),
        },
        other => err(
            expr_span(other),
            "a computed trait is an event with a reducer, e.g. \
             event('Order Completed').within(90 days).sum(property('revenue'))",
        ),
    }
}

/// The span of any expression.
pub fn expr_span(e: &ast::Expr) -> Span {
    match e {
        ast::Expr::Or { span, .. }
        | ast::Expr::And { span, .. }
        | ast::Expr::Not { span, .. }
        | ast::Expr::Quantified { span, .. }
        | ast::Expr::Compare { span, .. }
        | ast::Expr::Value { span, .. } => *span,
    }
}

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
        }
    }
    if let Some(l) = window.lower {
        conds.push(col("timestamp").gt(ts(l)));
    }
    if let Some(u) = window.upper {
        conds.push(col("timestamp").lt_eq(ts(u)));
    }
    Ok((super::junction::all(conds), window))
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

fn plan_err(e: datafusion::error::DataFusionError, span: Span) -> QueryCompileError {
    QueryCompileError {
        key: None,
        span,
        message: format!("cannot plan: {e}"),
    }
}

/// The aggregate of one trait over the events where `matches` holds.
pub(crate) fn reducer_aggregate(
    r: &ast::Reducer,
    value: Option<Expr>,
    matches: Expr,
) -> CResult<Expr> {
    let span = r.span;
    let need = |v: Option<Expr>| -> CResult<Expr> {
        match v {
            Some(v) => Ok(v),
            None => err(
                span,
                format!("`{}` needs a value, e.g. property('x')", r.kind.as_str()),
            ),
        }
    };
    let e = match r.kind {
        ReducerKind::Count => agg::count(lit(1i64)).filter(matches).build(),
        ReducerKind::Sum | ReducerKind::Avg | ReducerKind::Min | ReducerKind::Max => {
            let v = float(need(value)?);
            let f = match r.kind {
                ReducerKind::Sum => agg::sum(v),
                ReducerKind::Avg => agg::avg(v),
                ReducerKind::Min => agg::min(v),
                _ => agg::max(v),
            };
            f.filter(matches).build()
        }
        ReducerKind::Mode => {
            let v = need(value)?;
            let min = r.min_frequency.unwrap_or(1) as i64;
            aggregates::MODE
                .call(vec![v, lit(min)])
                .filter(matches)
                .build()
        }
        ReducerKind::First | ReducerKind::Last => {
            let v = need(value)?;
            let present = matches.and(v.clone().is_not_null());
            let f = if r.kind == ReducerKind::First {
                &aggregates::FIRST
            } else {
                &aggregates::LAST
            };
            f.call(vec![v, col("timestamp"), col("message_id")])
                .filter(present)
                .build()
        }
        ReducerKind::Unique => {
            let v = need(value)?;
            aggregates::UNIQUE.call(vec![v]).filter(matches).build()
        }
        ReducerKind::UniqueCount => {
            let v = need(value)?;
            aggregates::UNIQUE_COUNT
                .call(vec![v])
                .filter(matches)
                .build()
        }
    };
    e.map_err(|e| plan_err(e, span))
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
