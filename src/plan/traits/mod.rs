//! Computed traits to ONE aggregation plan: every trait of an entity type becomes a column of
//! a single `GROUP BY entity` over the events, with its event name, filters and window as the
//! aggregate's `FILTER`, instead of a query per trait.
//!
//! Result types are fixed by the reducer, so they are stable from run to run whatever the data
//! holds: `count` and `unique(..).count()` int64; `sum`, `avg`, `min`, `max` float64 (a value
//! that is not a number is ignored); `mode`, `first`, `last` utf8; `unique` list<utf8>, sorted.
//!
//! Files: this one holds the fused plan (types, the aggregation, reducers, shared JSON
//! parsing); `conditions.rs` holds the event-level conditions (chain filters, `where`
//! comparisons, an event's fields as text), which audiences use too.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, col, lit};

use crate::functions::aggregates;
use crate::functions::{as_json_get, json_paths};
use crate::spec::query::ast::{self, Operand, ReducerKind, Span};
use datafusion::functions::core::expr_fn::get_field;

mod conditions;

pub use conditions::event_condition;
pub(crate) use conditions::{
    as_timestamp, chain_filter, escape_like, float, literal_text, timestamp_literal, trait_column,
    ts, value_expr,
};

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
