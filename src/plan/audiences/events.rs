//! Event conditions: each chain's value per profile as a column of ONE fused aggregation over
//! the events (name pre-filter, widest window), and the filter of the events any audience
//! reads.
use std::collections::BTreeSet;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, TryCast, col, lit,
};
use datafusion::prelude::coalesce;

use crate::plan::traits::{
    EventScope, chain_filter, err, reducer_type, trait_column, ts, value_expr,
};
use crate::spec::query::ast::{EventChain, ReducerKind, Span};

use super::funnels::has_child;
use super::{CResult, Compiler, Level, plan_err};

impl Compiler<'_> {
    /// Records that events named `name` are read from `lower` on (None: all history).
    pub(super) fn read(&mut self, name: &str, lower: Option<i64>) {
        self.all_names.insert(name.to_string());
        self.all_widest = match (self.all_widest, lower) {
            (Some(w), Some(l)) => Some(w.min(l)),
            _ => None,
        };
    }

    /// An event chain's value per profile: a column of the fused aggregation (or of a funnel
    /// plan), with 0 for counts of profiles without events.
    pub(super) fn event_value(&mut self, chain: &EventChain) -> CResult<(Expr, DataType)> {
        let kind = chain
            .reducer
            .as_ref()
            .map_or(ReducerKind::Count, |r| r.kind);
        let alias = if has_child(chain) {
            self.funnel(chain)?
        } else {
            let scope = EventScope {
                as_of: self.as_of,
                parent: false,
                traits: Some(&self.event_traits),
                child: None,
            };
            let (matches, window) = chain_filter(chain, &scope)?;
            let value = match chain.reducer.as_ref().and_then(|r| r.arg.as_deref()) {
                Some(arg) => Some(value_expr(arg, &scope)?),
                None => None,
            };
            let aggregate = aggregate_of(chain, value, matches)?;
            self.widest = match (self.widest, window.lower) {
                (Some(w), Some(l)) => Some(w.min(l)),
                _ => None,
            };
            self.event_names.insert(chain.name.clone());
            self.read(&chain.name, window.lower);
            let text = format!("{aggregate}");
            match self.agg_index.get(&text) {
                Some(a) => a.clone(),
                None => {
                    let a = format!("__e{}", self.aggs.len());
                    self.aggs.push((a.clone(), aggregate));
                    self.agg_index.insert(text, a.clone());
                    a
                }
            }
        };
        let v = match kind {
            ReducerKind::Count | ReducerKind::UniqueCount => {
                coalesce(vec![col(alias.as_str()), lit(0i64)])
            }
            _ => col(alias.as_str()),
        };
        Ok((v, reducer_type(kind)))
    }

    /// `events` with the profile traits read inside event filters so far, as text columns.
    pub(super) fn with_event_traits(&self, events: LogicalPlan) -> CResult<LogicalPlan> {
        let keys = self.event_traits.borrow().clone();
        if keys.is_empty() {
            return Ok(events);
        }
        let mut cols = vec![col("profile_id").alias("__t_profile_id")];
        for k in &keys {
            let Some(c) = self.lookup(k, Span::default(), Level::Users)? else {
                return err(Span::default(), format!("unknown trait `{k}`"));
            };
            let text = match c.data_type {
                DataType::Utf8 => c.expr,
                DataType::Null => lit(ScalarValue::Utf8(None)),
                DataType::List(_) | DataType::LargeList(_) => {
                    return err(
                        Span::default(),
                        format!("trait `{k}` is a list; an event field compares with one value"),
                    );
                }
                _ => Expr::TryCast(TryCast::new(Box::new(c.expr), DataType::Utf8)),
            };
            cols.push(text.alias(trait_column(k)));
        }
        // Every audience's trait columns read on events come from the profile.
        let traits = LogicalPlanBuilder::from(self.inputs.profiles.clone())
            .project(cols)
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        LogicalPlanBuilder::from(events)
            .join(
                traits,
                JoinType::Left,
                (vec!["profile_id"], vec!["__t_profile_id"]),
                None,
            )
            .and_then(|b| b.build())
            .map_err(plan_err)
    }
}

/// A chain's aggregate over the rows where `matches` holds (a bare chain counts).
pub(super) fn aggregate_of(
    chain: &EventChain,
    value: Option<Expr>,
    matches: Expr,
) -> CResult<Expr> {
    match &chain.reducer {
        Some(r) => crate::plan::traits::reducer_aggregate(r, value, matches),
        None => agg::count(lit(1i64))
            .filter(matches)
            .build()
            .map_err(plan_err),
    }
}

/// `event IN names AND timestamp <= as_of [AND timestamp > lower]`.
pub(super) fn events_filter(
    names: &BTreeSet<String>,
    lower: Option<i64>,
    as_of: i64,
) -> Option<Expr> {
    if names.is_empty() {
        return None;
    }
    let mut e = col("event")
        .in_list(names.iter().map(|n| lit(n.as_str())).collect(), false)
        .and(col("timestamp").lt_eq(ts(as_of)));
    if let Some(l) = lower.filter(|l| *l != i64::MAX) {
        e = e.and(col("timestamp").gt(ts(l)));
    }
    Some(e)
}
