//! Funnels: one plan per parent chain, its instances joined to the profile's child events
//! after them, reduced per profile over the instances whose `where` holds.

use datafusion::arrow::datatypes::IntervalMonthDayNano;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::coalesce;

use crate::analyze::audiences::event_chains;

use crate::plan::traits::{EventScope, chain_filter, err, reducer_type, value_expr};
use crate::spec::query::ast::{self, EventChain, Filter, Operand, ReducerKind, Span};

use super::conditions::{Right, typed_compare};
use super::events::aggregate_of;
use super::{CResult, Compiler, plan_err};

impl Compiler<'_> {
    /// A funnel: the parent chain's instances, each with its child chains' values over the
    /// profile's child events after it, then the parent's reducer per profile over the
    /// instances whose `where` holds. Returns the alias of the per-profile column.
    pub(super) fn funnel(&mut self, parent: &EventChain) -> CResult<String> {
        let n = self.funnels.len();
        let alias = format!("__f{n}");
        let events = self.inputs.events.clone();
        // The parent's instances: its name and as-of windows; its `where` comes later.
        let bare = EventChain {
            filters: parent
                .filters
                .iter()
                .filter(|f| !matches!(f, Filter::Where { .. }))
                .cloned()
                .collect(),
            ..parent.clone()
        };
        let plain = EventScope::new(self.as_of);
        let (base_filter, parent_window) = chain_filter(&bare, &plain)?;
        self.read(&parent.name, parent_window.lower);
        let base = LogicalPlanBuilder::from(events.clone())
            .filter(base_filter)
            .map_err(plan_err)?
            .build()
            .map_err(plan_err)?;
        let mut children = Vec::new();
        for f in &parent.filters {
            if let Filter::Where { condition, .. } = f {
                child_chains(condition, &mut children);
            }
        }
        let mut rows = base.clone();
        let mut child_cols: Vec<(Span, String)> = Vec::new();
        for (i, child) in children.iter().enumerate() {
            // A child comes after its parent: no earlier than the parent's window.
            self.read(&child.name, parent_window.lower);
            let c_alias = format!("__f{n}_c{i}");
            let agg_plan = self.child_values(&base, &events, child, &c_alias)?;
            rows = LogicalPlanBuilder::from(rows)
                .join(
                    agg_plan,
                    JoinType::Left,
                    (
                        vec!["message_id".to_string()],
                        vec![format!("{c_alias}_id")],
                    ),
                    None,
                )
                .map_err(plan_err)?
                .build()
                .map_err(plan_err)?;
            child_cols.push((child.span, c_alias));
        }
        let as_of = self.as_of;
        let child_leaf = |leaf: &ast::Expr, chain: &EventChain| -> CResult<Expr> {
            let Some((_, c)) = child_cols.iter().find(|(s, _)| *s == chain.span) else {
                return err(chain.span, "a funnel's child event that was not planned");
            };
            let kind = chain
                .reducer
                .as_ref()
                .map_or(ReducerKind::Count, |r| r.kind);
            let v = match kind {
                ReducerKind::Count | ReducerKind::UniqueCount => {
                    coalesce(vec![col(c.as_str()), lit(0i64)])
                }
                _ => col(c.as_str()),
            };
            let e = match leaf {
                ast::Expr::Compare {
                    op, right, span, ..
                } => {
                    let r = match right {
                        None => None,
                        Some(Operand::Literal { value, .. }) => Some(Right::Lit(value)),
                        Some(o) => {
                            return err(
                                o.span(),
                                "compare a child event's value with a literal value",
                            );
                        }
                    };
                    typed_compare(v, &reducer_type(kind), *op, r, *span, as_of)?
                }
                _ => v.gt_eq(lit(1i64)),
            };
            Ok(coalesce(vec![e, lit(false)]))
        };
        let scope = EventScope {
            as_of,
            parent: false,
            traits: Some(&self.event_traits),
            child: Some(&child_leaf),
        };
        let (matches, _) = chain_filter(parent, &scope)?;
        let value = match parent.reducer.as_ref().and_then(|r| r.arg.as_deref()) {
            Some(arg) => Some(value_expr(arg, &scope)?),
            None => None,
        };
        let aggregate = aggregate_of(parent, value, matches)?;
        let rows = self.with_event_traits(rows)?;
        let plan = LogicalPlanBuilder::from(rows)
            .aggregate(
                vec![col("profile_id")],
                vec![aggregate.alias(alias.as_str())],
            )
            .and_then(|b| {
                b.project(vec![
                    col("profile_id").alias(format!("{alias}_profile_id")),
                    col(alias.as_str()),
                ])
            })
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        self.funnels.push((alias.clone(), plan));
        Ok(alias)
    }

    /// One child chain's value per parent instance: `(<alias>_id, <alias>)`.
    fn child_values(
        &mut self,
        base: &LogicalPlan,
        events: &LogicalPlan,
        child: &EventChain,
        alias: &str,
    ) -> CResult<LogicalPlan> {
        if child.filters.iter().any(|f| match f {
            Filter::Where { condition, .. } => {
                let mut inner = Vec::new();
                child_chains(condition, &mut inner);
                !inner.is_empty()
            }
            _ => false,
        }) {
            return err(
                child.span,
                "a funnel's child event cannot have a funnel of its own: funnels are one \
                 level deep",
            );
        }
        let mut parent_window = None;
        let own = EventChain {
            filters: child
                .filters
                .iter()
                .filter(|f| match f {
                    Filter::Within { window, .. } if window.parent => {
                        parent_window = Some(*window);
                        false
                    }
                    _ => true,
                })
                .cloned()
                .collect(),
            ..child.clone()
        };
        let scope = EventScope {
            as_of: self.as_of,
            parent: true,
            traits: Some(&self.event_traits),
            child: None,
        };
        let (matches, _) = chain_filter(&own, &scope)?;
        let value = match child.reducer.as_ref().and_then(|r| r.arg.as_deref()) {
            Some(arg) => Some(value_expr(arg, &scope)?),
            None => None,
        };
        let parents = LogicalPlanBuilder::from(base.clone())
            .project(vec![
                col("message_id").alias("__p_id"),
                col("profile_id").alias("__p_profile_id"),
                col("timestamp").alias("__p_timestamp"),
                col("properties").alias("__parent_properties"),
                col("context").alias("__parent_context"),
            ])
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        let kids = LogicalPlanBuilder::from(events.clone())
            .filter(col("event").eq(lit(child.name.as_str())))
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        let kids = self.with_event_traits(kids)?;
        let mut on = vec![
            col("__p_profile_id").eq(col("profile_id")),
            col("timestamp").gt(col("__p_timestamp")),
            matches,
        ];
        if let Some(w) = parent_window {
            let nanos = w.seconds() as i128 * 1_000_000_000;
            let interval = lit(ScalarValue::IntervalMonthDayNano(Some(
                IntervalMonthDayNano::new(0, 0, nanos as i64),
            )));
            on.push(col("timestamp").lt_eq(col("__p_timestamp") + interval));
        }
        let present = col("message_id").is_not_null();
        let aggregate = aggregate_of(child, value, present)?;
        LogicalPlanBuilder::from(parents)
            .join_on(kids, JoinType::Left, on)
            .and_then(|b| b.aggregate(vec![col("__p_id")], vec![aggregate.alias(alias)]))
            .and_then(|b| b.project(vec![col("__p_id").alias(format!("{alias}_id")), col(alias)]))
            .and_then(|b| b.build())
            .map_err(plan_err)
    }
}

/// The chains written inside a funnel parent's `where` (its children), in order.
fn child_chains(e: &ast::Expr, out: &mut Vec<EventChain>) {
    out.extend(event_chains(e).into_iter().cloned());
}

/// Whether a chain is a funnel parent: an event inside its `where`.
pub(super) fn has_child(chain: &EventChain) -> bool {
    chain.filters.iter().any(|f| match f {
        Filter::Where { condition, .. } => {
            let mut c = Vec::new();
            child_chains(condition, &mut c);
            !c.is_empty()
        }
        _ => false,
    })
}
