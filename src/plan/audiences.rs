//! Audiences to plans that share work: every event condition of every audience becomes a
//! column of ONE aggregation per profile over the events (name pre-filter, widest window),
//! funnels get one plan per parent chain (parent instances joined to their child events),
//! and the result is joined onto every profile, so profiles without events are evaluated too.
//! Each audience is then a boolean column over that wide row, added in dependency order so
//! that `trait('<audience>')` reads an audience computed before it. Account audiences read
//! account traits and aggregate user-level conditions over the account's users (ANY, ALL,
//! NOT ANY).
//!
//! A leaf condition that is unknown (a missing trait, a sum over no events) counts as false,
//! so `NOT` of it holds: `NOT trait('plan') = 'pro'` includes profiles without a plan.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::functions_nested::expr_fn::{array_has, cardinality};
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, Operator, TryCast, col, lit,
};
use datafusion::prelude::coalesce;

use crate::analyze::audiences::{audience_order, event_chains, trait_refs};

use super::junction::balanced;
use super::traits::{
    EventScope, QueryCompileError, chain_filter, err, escape_like, float, literal_text,
    reducer_type, timestamp_literal, trait_column, ts, value_expr,
};
use crate::spec::EntityType;
use crate::spec::query::ast::{
    self, Comparator, EventChain, Filter, Literal, Operand, Quantifier, ReducerKind, Span,
};

type CResult<T> = Result<T, QueryCompileError>;

fn plan_err(e: datafusion::error::DataFusionError) -> QueryCompileError {
    QueryCompileError {
        key: None,
        span: Span::default(),
        message: format!("cannot plan the audiences: {e}"),
    }
}

/// An audience to compile.
pub struct AudienceQuery<'a> {
    pub key: &'a str,
    pub query: &'a ast::Expr,
    pub entity: EntityType,
    pub include_anonymous: bool,
}

/// What audiences read: the profiles (`profile_id` + trait columns), every event with its
/// profile (`profile_events`), the accounts (`account_id` + account traits) and the links
/// between accounts and users (`account_id`, `profile_id`).
#[derive(Clone)]
pub struct AudienceInputs {
    pub profiles: LogicalPlan,
    pub events: LogicalPlan,
    pub accounts: LogicalPlan,
    pub links: LogicalPlan,
    /// Trait columns whose type comes from the data (custom and SQL traits): a comparison
    /// that does not fit their type is unknown (false) instead of an error, since the type
    /// may change with the data.
    pub data_typed: BTreeSet<String>,
    /// Validation: a trait key that is not a column is read as an unknown text value instead
    /// of an error (custom traits are only known once data has been read).
    pub lenient: bool,
}

/// The compiled audiences: one boolean column per audience, named by key.
pub struct AudiencePlans {
    /// `profile_id` and a column per users audience.
    pub users: LogicalPlan,
    /// `account_id` and a column per accounts audience; None without account audiences.
    pub accounts: Option<LogicalPlan>,
    /// Audience keys in evaluation order (an audience after those it reads).
    pub order: Vec<String>,
    /// Each audience's top-level conditions (the items of its top-level AND or OR, or the
    /// whole query), as columns `__top_<key>_<n>` of `users` / `accounts`, when asked for.
    pub top_level: BTreeMap<String, Vec<String>>,
    /// Comparisons that did not fit a trait's type from the data (they count as false).
    pub warnings: Vec<String>,
    /// The events any audience reads: their names, up to as-of, from the widest window on.
    /// A caller that keeps `events` filtered by this once (see `run::audiences`) has every
    /// plan read that subset instead of all events; None when no audience reads events.
    pub events_filter: Option<Expr>,
}

/// Which side of an account audience a condition is evaluated on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Users,
    Accounts,
}

/// A column of the wide row a condition can read: its expression and type.
struct Column {
    expr: Expr,
    data_type: DataType,
    /// Its type comes from the data (see [`AudienceInputs::data_typed`]).
    data_typed: bool,
}

struct Compiler<'a> {
    as_of: i64,
    inputs: &'a AudienceInputs,
    profile_types: BTreeMap<String, DataType>,
    account_types: BTreeMap<String, DataType>,
    /// Audience key -> its entity type.
    audiences: BTreeMap<String, EntityType>,
    /// The fused per-profile aggregation: (alias, aggregate), deduplicated by text.
    aggs: Vec<(String, Expr)>,
    agg_index: HashMap<String, String>,
    event_names: BTreeSet<String>,
    /// The widest lower time bound of the fused aggregation (None: unbounded).
    widest: Option<i64>,
    /// Every event name any audience reads (funnels too), and the widest lower time bound.
    all_names: BTreeSet<String>,
    all_widest: Option<i64>,
    /// Per-profile plans of funnels: (alias, plan with `__f_profile_id` and the alias).
    funnels: Vec<(String, LogicalPlan)>,
    /// Profile traits read inside event filters.
    event_traits: RefCell<Vec<String>>,
    /// User-level conditions of account audiences: (alias, boolean over the users' row).
    quantified: Vec<(String, Expr)>,
    quantified_index: HashMap<String, String>,
    warnings: Vec<String>,
}

fn audience_column(key: &str) -> String {
    format!("__aud_{key}")
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric()
}

fn describe(t: &DataType) -> &'static str {
    match t {
        t if t.is_numeric() => "a number",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Boolean => "true or false",
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => "a time",
        DataType::List(_) | DataType::LargeList(_) => "a list",
        _ => "a value",
    }
}

impl<'a> Compiler<'a> {
    fn new(inputs: &'a AudienceInputs, audiences: &[AudienceQuery<'_>], as_of: i64) -> Self {
        let types = |p: &LogicalPlan, skip: &str| {
            p.schema()
                .fields()
                .iter()
                .filter(|f| f.name() != skip)
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<BTreeMap<_, _>>()
        };
        Compiler {
            as_of,
            inputs,
            profile_types: types(&inputs.profiles, "profile_id"),
            account_types: types(&inputs.accounts, "account_id"),
            audiences: audiences
                .iter()
                .map(|a| (a.key.to_string(), a.entity))
                .collect(),
            aggs: Vec::new(),
            agg_index: HashMap::new(),
            event_names: BTreeSet::new(),
            widest: Some(i64::MAX),
            all_names: BTreeSet::new(),
            all_widest: Some(i64::MAX),
            funnels: Vec::new(),
            event_traits: RefCell::new(Vec::new()),
            quantified: Vec::new(),
            quantified_index: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Records that events named `name` are read from `lower` on (None: all history).
    fn read(&mut self, name: &str, lower: Option<i64>) {
        self.all_names.insert(name.to_string());
        self.all_widest = match (self.all_widest, lower) {
            (Some(w), Some(l)) => Some(w.min(l)),
            _ => None,
        };
    }

    /// `trait('key')` at `level`: a trait column or an audience's membership.
    fn lookup(&self, key: &str, span: Span, level: Level) -> CResult<Option<Column>> {
        let (types, entity) = match level {
            Level::Users => (&self.profile_types, EntityType::Users),
            Level::Accounts => (&self.account_types, EntityType::Accounts),
        };
        if let Some(e) = self.audiences.get(key) {
            if *e == entity {
                return Ok(Some(Column {
                    expr: col(audience_column(key)),
                    data_type: DataType::Boolean,
                    data_typed: false,
                }));
            }
            if level == Level::Users {
                return err(
                    span,
                    format!(
                        "`{key}` is an account audience; a user audience cannot read it \
                         (an account audience can read user audiences with ANY / ALL)"
                    ),
                );
            }
            return Ok(None);
        }
        let name = if types.contains_key(key) {
            key.to_string()
        } else {
            super::profiles::column_name(key)
        };
        match types.get(&name) {
            Some(t) => Ok(Some(Column {
                expr: col(name.as_str()),
                data_type: t.clone(),
                data_typed: self.inputs.data_typed.contains(&name),
            })),
            None if level == Level::Accounts
                && !(self.inputs.lenient
                    && !self.profile_types.contains_key(&name)
                    && !self.audiences.contains_key(key)) =>
            {
                Ok(None)
            }
            None if self.inputs.lenient => Ok(Some(Column {
                expr: lit(ScalarValue::Utf8(None)),
                data_type: DataType::Null,
                data_typed: true,
            })),
            None => {
                let mut candidates: Vec<&str> = types.keys().map(String::as_str).collect();
                candidates.extend(
                    self.audiences
                        .iter()
                        .filter(|(_, e)| **e == entity)
                        .map(|(k, _)| k.as_str()),
                );
                let help = match crate::spec::suggest(key, &candidates) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => String::new(),
                };
                err(
                    span,
                    format!(
                        "unknown trait or audience `{key}`: no computed, custom or SQL trait and \
                         no audience has this key{help}"
                    ),
                )
            }
        }
    }

    /// A condition at `level` as a boolean over the wide row; unknown counts as false.
    fn cond(&mut self, e: &ast::Expr, level: Level) -> CResult<Expr> {
        match e {
            ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => {
                let op = match e {
                    ast::Expr::Or { .. } => Operator::Or,
                    _ => Operator::And,
                };
                let conds = items
                    .iter()
                    .map(|i| self.cond(i, level))
                    .collect::<CResult<Vec<_>>>()?;
                Ok(balanced(conds, op).unwrap_or(lit(true)))
            }
            ast::Expr::Not { expr, .. } => Ok(Expr::Not(Box::new(self.cond(expr, level)?))),
            ast::Expr::Quantified {
                quantifier,
                expr,
                span,
            } => {
                if level == Level::Users {
                    return err(
                        *span,
                        "`ANY`, `ALL` and `NOT ANY` are for account audiences",
                    );
                }
                let user = self.cond(expr, Level::Users)?;
                Ok(self.quantify(*quantifier, user))
            }
            leaf => {
                if level == Level::Accounts && !self.is_account_leaf(leaf)? {
                    // A user-level condition in an account audience: ANY of its users.
                    let user = self.cond(leaf, Level::Users)?;
                    return Ok(self.quantify(Quantifier::Any, user));
                }
                let c = self.leaf(leaf, level)?;
                Ok(coalesce(vec![c, lit(false)]))
            }
        }
    }

    /// Whether a leaf of an account audience reads the account itself (its traits or
    /// account audiences) rather than its users.
    fn is_account_leaf(&self, e: &ast::Expr) -> CResult<bool> {
        let mut refs = Vec::new();
        trait_refs(e, &mut refs);
        let events = match e {
            ast::Expr::Compare { left, right, .. } => {
                matches!(left, Operand::Event(_)) || matches!(right, Some(Operand::Event(_)))
            }
            ast::Expr::Value { value, .. } => matches!(value, Operand::Event(_)),
            _ => false,
        };
        if events || refs.is_empty() {
            return Ok(false);
        }
        let mut account = None;
        for (k, span) in refs {
            let here = self.lookup(&k, span, Level::Accounts)?.is_some();
            match account {
                None => account = Some(here),
                Some(a) if a != here => {
                    return err(
                        span,
                        "this comparison mixes an account trait with a user trait; compare \
                         each with a value, or put the user part in ANY / ALL",
                    );
                }
                _ => {}
            }
        }
        Ok(account.unwrap_or(false))
    }

    /// A user-level condition aggregated over each account's users.
    fn quantify(&mut self, q: Quantifier, user: Expr) -> Expr {
        let text = format!("{user}");
        let alias = match self.quantified_index.get(&text) {
            Some(a) => a.clone(),
            None => {
                let a = format!("__q{}", self.quantified.len());
                self.quantified.push((a.clone(), user));
                self.quantified_index.insert(text, a.clone());
                a
            }
        };
        let any = coalesce(vec![col(format!("{alias}_any")), lit(false)]);
        match q {
            Quantifier::Any => any,
            Quantifier::NotAny => Expr::Not(Box::new(any)),
            Quantifier::All => coalesce(vec![col(format!("{alias}_all")), lit(false)]),
        }
    }

    /// A comparison or a bare value, before NULL becomes false.
    fn leaf(&mut self, e: &ast::Expr, level: Level) -> CResult<Expr> {
        match e {
            ast::Expr::Value { value, span } => match value {
                Operand::Event(chain) => {
                    let (v, _) = self.event_value(chain)?;
                    Ok(v.gt_eq(lit(1i64)))
                }
                Operand::Trait { key, span } => {
                    let Some(c) = self.lookup(key, *span, level)? else {
                        return err(*span, format!("unknown trait `{key}`"));
                    };
                    match c.data_type {
                        DataType::Boolean => Ok(c.expr.is_true()),
                        DataType::Null => Ok(lit(ScalarValue::Boolean(None))),
                        ref t => err(
                            *span,
                            format!(
                                "trait `{key}` is {}, not true or false: compare it, e.g. \
                                 trait('{key}') = ...",
                                describe(t)
                            ),
                        ),
                    }
                }
                _ => err(*span, "this is a value, not a condition: compare it"),
            },
            ast::Expr::Compare {
                left,
                op,
                right,
                span,
            } => {
                let (l, lt, data_typed) = self.operand(left, level)?;
                let r = match right {
                    None => None,
                    Some(Operand::Literal { value, .. }) => Some(Right::Lit(value)),
                    Some(o) => {
                        let (r, rt, _) = self.operand(o, level)?;
                        Some(Right::Col(r, rt))
                    }
                };
                match typed_compare(l, &lt, *op, r, *span, self.as_of) {
                    Err(e) if data_typed => {
                        self.warnings.push(e.message);
                        Ok(lit(ScalarValue::Boolean(None)))
                    }
                    other => other,
                }
            }
            other => self.cond(other, level),
        }
    }

    /// An operand at profile (or account) level: (value, type, type-from-data).
    fn operand(&mut self, o: &Operand, level: Level) -> CResult<(Expr, DataType, bool)> {
        match o {
            Operand::Event(chain) => {
                let (v, t) = self.event_value(chain)?;
                Ok((v, t, false))
            }
            Operand::Trait { key, span } => match self.lookup(key, *span, level)? {
                Some(c) => Ok((c.expr, c.data_type, c.data_typed)),
                None => err(*span, format!("unknown trait `{key}`")),
            },
            Operand::Literal { span, .. } => err(
                *span,
                "put the value on the right of the comparison, e.g. trait('plan') = 'pro'",
            ),
            Operand::Property { span, .. } | Operand::Context { span, .. } => err(
                *span,
                "an event field belongs inside `.where(...)` of an event",
            ),
        }
    }

    /// An event chain's value per profile: a column of the fused aggregation (or of a funnel
    /// plan), with 0 for counts of profiles without events.
    fn event_value(&mut self, chain: &EventChain) -> CResult<(Expr, DataType)> {
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

    /// A funnel: the parent chain's instances, each with its child chains' values over the
    /// profile's child events after it, then the parent's reducer per profile over the
    /// instances whose `where` holds. Returns the alias of the per-profile column.
    fn funnel(&mut self, parent: &EventChain) -> CResult<String> {
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

    /// `events` with the profile traits read inside event filters so far, as text columns.
    fn with_event_traits(&self, events: LogicalPlan) -> CResult<LogicalPlan> {
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

/// The chains written inside a funnel parent's `where` (its children), in order.
fn child_chains(e: &ast::Expr, out: &mut Vec<EventChain>) {
    out.extend(event_chains(e).into_iter().cloned());
}

/// Whether a chain is a funnel parent: an event inside its `where`.
fn has_child(chain: &EventChain) -> bool {
    chain.filters.iter().any(|f| match f {
        Filter::Where { condition, .. } => {
            let mut c = Vec::new();
            child_chains(condition, &mut c);
            !c.is_empty()
        }
        _ => false,
    })
}

/// A chain's aggregate over the rows where `matches` holds (a bare chain counts).
fn aggregate_of(chain: &EventChain, value: Option<Expr>, matches: Expr) -> CResult<Expr> {
    match &chain.reducer {
        Some(r) => super::traits::reducer_aggregate(r, value, matches),
        None => agg::count(lit(1i64))
            .filter(matches)
            .build()
            .map_err(plan_err),
    }
}

/// The right side of a comparison.
enum Right<'a> {
    Lit(&'a Literal),
    Col(Expr, DataType),
}

/// `l op r` where `l` has type `lt` (a trait column or an event value). A literal that does
/// not fit the type is an error (the type is known); `DataType::Null` is a type not known
/// yet, compared as text.
fn typed_compare(
    l: Expr,
    lt: &DataType,
    op: Comparator,
    right: Option<Right<'_>>,
    span: Span,
    as_of: i64,
) -> CResult<Expr> {
    let what = describe(lt);
    let mismatch = |hint: &str| -> CResult<Expr> {
        err(
            span,
            format!("this value is {what}, so `{}` {hint}", op.as_str()),
        )
    };
    let unknown = *lt == DataType::Null;
    let text_like = unknown || matches!(lt, DataType::Utf8 | DataType::LargeUtf8);
    let list = matches!(lt, DataType::List(_) | DataType::LargeList(_));
    let time = matches!(lt, DataType::Timestamp(..));
    match op {
        Comparator::Exists => return Ok(present(l, list)),
        Comparator::Absent => return Ok(Expr::Not(Box::new(present(l, list)))),
        _ => {}
    }
    let Some(right) = right else {
        return err(span, "this comparison needs a value on its right");
    };
    let cmp = |a: Expr, b: Expr| -> Expr {
        match op {
            Comparator::Eq => a.eq(b),
            Comparator::Ne => a.not_eq(b),
            Comparator::Gt => a.gt(b),
            Comparator::Ge => a.gt_eq(b),
            Comparator::Lt => a.lt(b),
            _ => a.lt_eq(b),
        }
    };
    let r = match right {
        Right::Col(r, rt) => {
            // Two values read from the row.
            if is_number(lt) && is_number(&rt) {
                return Ok(cmp(float(l), float(r)));
            }
            if matches!(
                op,
                Comparator::Eq
                    | Comparator::Ne
                    | Comparator::Gt
                    | Comparator::Ge
                    | Comparator::Lt
                    | Comparator::Le
            ) && !list
                && !matches!(rt, DataType::List(_))
            {
                let text = |e: Expr| Expr::TryCast(TryCast::new(Box::new(e), DataType::Utf8));
                return Ok(cmp(text(l), text(r)));
            }
            return err(span, "compare these two values with =, !=, <, <=, > or >=");
        }
        Right::Lit(r) => r,
    };
    match op {
        Comparator::Eq
        | Comparator::Ne
        | Comparator::Gt
        | Comparator::Ge
        | Comparator::Lt
        | Comparator::Le => {
            let ordering = !matches!(op, Comparator::Eq | Comparator::Ne);
            match r {
                Literal::Null => match op {
                    Comparator::Eq => Ok(Expr::Not(Box::new(present(l, list)))),
                    Comparator::Ne => Ok(present(l, list)),
                    _ => err(span, "null compares only with = and !="),
                },
                Literal::Int(_) | Literal::Float(_) => {
                    let n = match r {
                        Literal::Int(i) => *i as f64,
                        Literal::Float(f) => *f,
                        _ => unreachable!(),
                    };
                    if is_number(lt) || text_like {
                        Ok(cmp(float(l), lit(n)))
                    } else {
                        mismatch("compares it with a number")
                    }
                }
                Literal::String(s) => {
                    if text_like {
                        Ok(cmp(l, lit(s.as_str())))
                    } else if time {
                        Ok(cmp(l, timestamp_literal(r, span)?))
                    } else {
                        mismatch("cannot compare it with text")
                    }
                }
                Literal::Bool(b) => {
                    if ordering {
                        err(span, "true and false compare only with = and !=")
                    } else if *lt == DataType::Boolean {
                        Ok(cmp(l, lit(*b)))
                    } else if text_like {
                        Ok(cmp(l, lit(b.to_string())))
                    } else {
                        mismatch("cannot compare it with true or false")
                    }
                }
                Literal::List(_) => err(span, "compare with one value; use one_of for a list"),
                Literal::Duration(_) => err(span, "a duration compares with within_last"),
            }
        }
        Comparator::Contains | Comparator::StartsWith | Comparator::EndsWith => {
            let Some(text) = literal_text(r) else {
                return err(span, "this comparison needs a text value");
            };
            if list {
                if op == Comparator::Contains {
                    return Ok(array_has(l, lit(text)));
                }
                return mismatch("needs text; use contains for a list");
            }
            if !text_like {
                return mismatch("needs text");
            }
            let pattern = match op {
                Comparator::Contains => format!("%{}%", escape_like(&text)),
                Comparator::StartsWith => format!("{}%", escape_like(&text)),
                _ => format!("%{}", escape_like(&text)),
            };
            Ok(l.like(lit(pattern)))
        }
        Comparator::OneOf | Comparator::NoneOf => {
            let Literal::List(items) = r else {
                return err(span, "one_of / none_of take a list, e.g. ['a', 'b']");
            };
            let (l, values) = if is_number(lt) {
                let mut v = Vec::new();
                for i in items {
                    match i {
                        Literal::Int(n) => v.push(lit(*n as f64)),
                        Literal::Float(f) => v.push(lit(*f)),
                        _ => return mismatch("takes a list of numbers"),
                    }
                }
                (float(l), v)
            } else if text_like {
                let mut v = Vec::new();
                for i in items {
                    match literal_text(i) {
                        Some(t) => v.push(lit(t)),
                        None => return err(span, "list items are numbers, text or booleans"),
                    }
                }
                (l, v)
            } else {
                return mismatch("takes text or numbers");
            };
            if op == Comparator::OneOf {
                Ok(l.in_list(values, false))
            } else {
                Ok(l.clone().is_null().or(l.in_list(values, true)))
            }
        }
        Comparator::BeforeDate | Comparator::AfterDate | Comparator::WithinLast => {
            let t = if time {
                l
            } else if text_like {
                super::traits::as_timestamp(l)
            } else {
                return mismatch("needs a time");
            };
            match op {
                Comparator::BeforeDate => Ok(t.lt(timestamp_literal(r, span)?)),
                Comparator::AfterDate => Ok(t.gt(timestamp_literal(r, span)?)),
                _ => {
                    let Literal::Duration(d) = r else {
                        return err(span, "within_last takes a duration, e.g. 7 days");
                    };
                    Ok(t.clone()
                        .gt(ts(as_of - d.seconds() * 1_000_000))
                        .and(t.lt_eq(ts(as_of))))
                }
            }
        }
        Comparator::Exists | Comparator::Absent => unreachable!("handled above"),
    }
}

/// A value is there: not null, and for a list, not empty.
fn present(l: Expr, list: bool) -> Expr {
    if list {
        l.clone().is_not_null().and(cardinality(l).gt(lit(0u64)))
    } else {
        l.is_not_null()
    }
}

/// `event IN names AND timestamp <= as_of [AND timestamp > lower]`.
fn events_filter(names: &BTreeSet<String>, lower: Option<i64>, as_of: i64) -> Option<Expr> {
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

/// The items of a query's top-level junction (or the query itself).
pub fn top_level_conditions(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => items.iter().collect(),
        other => vec![other],
    }
}

/// Whether a profile has a user id: its `user_id` column is set (and, as a list, not empty).
fn has_user_id(profiles: &BTreeMap<String, DataType>) -> Option<Expr> {
    match profiles.get("user_id")? {
        DataType::List(_) | DataType::LargeList(_) => Some(present(col("user_id"), true)),
        _ => Some(col("user_id").is_not_null()),
    }
}

/// The audiences of `space` with their parsed queries (in the same order), to compile.
pub fn space_queries<'a>(
    space: &'a crate::spec::Space,
    parsed: &'a [ast::Expr],
) -> Vec<AudienceQuery<'a>> {
    space
        .audiences
        .iter()
        .zip(parsed)
        .map(|(d, q)| AudienceQuery {
            key: &d.key,
            query: q,
            entity: d.entity,
            include_anonymous: d.include_anonymous,
        })
        .collect()
}

/// An audience compile error of `space` as a diagnostic at its file, line and column.
pub fn error_diagnostic(
    space: &crate::spec::Space,
    e: &QueryCompileError,
) -> crate::spec::Diagnostic {
    let def = space
        .audiences
        .iter()
        .find(|d| e.key.as_deref() == Some(d.key.as_str()));
    let loc = def.map(|d| crate::spec::query::span_loc(&d.query_loc, &d.query, e.span));
    crate::spec::Diagnostic::error(loc, e.message.clone())
}

/// Compiles every audience into the users plan and (with account audiences) the accounts
/// plan. With `top_level`, each audience's top-level conditions become columns too (for
/// previews).
pub fn audiences_plan(
    inputs: &AudienceInputs,
    audiences: &[AudienceQuery<'_>],
    as_of_micros: i64,
    top_level: bool,
) -> CResult<AudiencePlans> {
    let list: Vec<(&str, &ast::Expr)> = audiences.iter().map(|a| (a.key, a.query)).collect();
    let order = audience_order(&list).map_err(|c| QueryCompileError {
        key: Some(audiences[c.audience].key.to_string()),
        span: c.span,
        message: c.message,
    })?;
    let mut c = Compiler::new(inputs, audiences, as_of_micros);
    let with_key = |key: &str| {
        let key = key.to_string();
        move |mut e: QueryCompileError| {
            if e.key.is_none() {
                e.key = Some(key.clone());
            }
            e
        }
    };
    // Each audience's condition over the wide row, in order.
    let mut users_cols: Vec<(String, Expr)> = Vec::new();
    let mut account_cols: Vec<(String, Expr)> = Vec::new();
    let mut tops: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut users_tops: Vec<(String, Expr)> = Vec::new();
    let mut account_tops: Vec<(String, Expr)> = Vec::new();
    for i in &order {
        let a = &audiences[*i];
        let level = match a.entity {
            EntityType::Users => Level::Users,
            EntityType::Accounts => Level::Accounts,
        };
        let mut e = c.cond(a.query, level).map_err(with_key(a.key))?;
        if !a.include_anonymous && a.entity == EntityType::Users {
            let Some(has) = has_user_id(&c.profile_types) else {
                return Err(QueryCompileError {
                    key: Some(a.key.to_string()),
                    span: Span::default(),
                    message: "`include_anonymous: false` keeps profiles with a user_id, and \
                              this space has no `user_id` identifier type"
                        .into(),
                });
            };
            e = e.and(coalesce(vec![has, lit(false)]));
        }
        if top_level {
            let mut names = Vec::new();
            for (n, t) in top_level_conditions(a.query).into_iter().enumerate() {
                let name = format!("__top_{}_{n}", a.key);
                let te = c.cond(t, level).map_err(with_key(a.key))?;
                match a.entity {
                    EntityType::Users => users_tops.push((name.clone(), te)),
                    EntityType::Accounts => account_tops.push((name.clone(), te)),
                }
                names.push(name);
            }
            tops.insert(a.key.to_string(), names);
        }
        match a.entity {
            EntityType::Users => users_cols.push((a.key.to_string(), e)),
            EntityType::Accounts => account_cols.push((a.key.to_string(), e)),
        }
    }

    // The wide users row: profiles, the fused aggregation, the funnels.
    let mut wide = inputs.profiles.clone();
    if !c.aggs.is_empty() {
        let mut pre = col("event").in_list(
            c.event_names.iter().map(|n| lit(n.as_str())).collect(),
            false,
        );
        pre = pre.and(col("timestamp").lt_eq(ts(as_of_micros)));
        if let Some(lower) = c.widest.filter(|w| *w != i64::MAX) {
            pre = pre.and(col("timestamp").gt(ts(lower)));
        }
        let events = LogicalPlanBuilder::from(inputs.events.clone())
            .filter(pre)
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        let events = c.with_event_traits(events)?;
        let aggs: Vec<Expr> = c
            .aggs
            .iter()
            .map(|(a, e)| e.clone().alias(a.as_str()))
            .collect();
        // Each JSON column is parsed once per row for every path the conditions read.
        let (parsed, aggs) = super::traits::share_json_parsing(aggs).map_err(plan_err)?;
        let events = if parsed.is_empty() {
            events
        } else {
            let mut cols: Vec<Expr> = events
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            cols.extend(parsed);
            LogicalPlanBuilder::from(events)
                .project(cols)
                .and_then(|b| b.build())
                .map_err(plan_err)?
        };
        let mut select = vec![col("profile_id").alias("__e_profile_id")];
        select.extend(c.aggs.iter().map(|(a, _)| col(a.as_str())));
        let fused = LogicalPlanBuilder::from(events)
            .aggregate(vec![col("profile_id")], aggs)
            .and_then(|b| b.project(select))
            .and_then(|b| b.build())
            .map_err(plan_err)?;
        wide = LogicalPlanBuilder::from(wide)
            .join(
                fused,
                JoinType::Left,
                (vec!["profile_id"], vec!["__e_profile_id"]),
                None,
            )
            .and_then(|b| b.build())
            .map_err(plan_err)?;
    }
    for (alias, plan) in &c.funnels {
        wide = LogicalPlanBuilder::from(wide)
            .join(
                plan.clone(),
                JoinType::Left,
                (
                    vec!["profile_id".to_string()],
                    vec![format!("{alias}_profile_id")],
                ),
                None,
            )
            .and_then(|b| b.build())
            .map_err(plan_err)?;
    }
    // Audiences one after the other, each reading those before it.
    let add = |plan: LogicalPlan, name: String, e: Expr| -> CResult<LogicalPlan> {
        let mut exprs: Vec<Expr> = plan
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        exprs.push(e.alias(name));
        LogicalPlanBuilder::from(plan)
            .project(exprs)
            .and_then(|b| b.build())
            .map_err(plan_err)
    };
    for (key, e) in &users_cols {
        wide = add(wide, audience_column(key), e.clone())?;
    }
    for (name, e) in &users_tops {
        wide = add(wide, name.clone(), e.clone())?;
    }
    for (alias, e) in &c.quantified {
        wide = add(wide, alias.clone(), e.clone())?;
    }
    let mut users_out = vec![col("profile_id")];
    users_out.extend(
        users_cols
            .iter()
            .map(|(k, _)| col(audience_column(k)).alias(k.as_str())),
    );
    users_out.extend(users_tops.iter().map(|(n, _)| col(n.as_str())));

    let accounts = if account_cols.is_empty() {
        None
    } else {
        let mut acc = inputs.accounts.clone();
        if !c.quantified.is_empty() {
            let mut q_select = vec![col("profile_id").alias("__q_profile_id")];
            q_select.extend(c.quantified.iter().map(|(a, _)| col(a.as_str())));
            let users = LogicalPlanBuilder::from(wide.clone())
                .project(q_select)
                .and_then(|b| b.build())
                .map_err(plan_err)?;
            let mut aggs = Vec::new();
            for (a, _) in &c.quantified {
                aggs.push(agg::bool_or(col(a.as_str())).alias(format!("{a}_any")));
                aggs.push(agg::bool_and(col(a.as_str())).alias(format!("{a}_all")));
            }
            let links = LogicalPlanBuilder::from(inputs.links.clone())
                .project(vec![
                    col("account_id").alias("__q_account_id"),
                    col("profile_id").alias("__l_profile_id"),
                ])
                .and_then(|b| b.build())
                .map_err(plan_err)?;
            let per_account = LogicalPlanBuilder::from(links)
                .join(
                    users,
                    JoinType::Inner,
                    (vec!["__l_profile_id"], vec!["__q_profile_id"]),
                    None,
                )
                .and_then(|b| b.aggregate(vec![col("__q_account_id")], aggs))
                .and_then(|b| b.build())
                .map_err(plan_err)?;
            acc = LogicalPlanBuilder::from(acc)
                .join(
                    per_account,
                    JoinType::Left,
                    (vec!["account_id"], vec!["__q_account_id"]),
                    None,
                )
                .and_then(|b| b.build())
                .map_err(plan_err)?;
        }
        for (key, e) in &account_cols {
            acc = add(acc, audience_column(key), e.clone())?;
        }
        for (name, e) in &account_tops {
            acc = add(acc, name.clone(), e.clone())?;
        }
        let mut out = vec![col("account_id")];
        out.extend(
            account_cols
                .iter()
                .map(|(k, _)| col(audience_column(k)).alias(k.as_str())),
        );
        out.extend(account_tops.iter().map(|(n, _)| col(n.as_str())));
        Some(
            LogicalPlanBuilder::from(acc)
                .project(out)
                .and_then(|b| b.build())
                .map_err(plan_err)?,
        )
    };
    let users = LogicalPlanBuilder::from(wide)
        .project(users_out)
        .and_then(|b| b.build())
        .map_err(plan_err)?;
    Ok(AudiencePlans {
        users,
        accounts,
        order: order
            .iter()
            .map(|i| audiences[*i].key.to_string())
            .collect(),
        top_level: tops,
        warnings: std::mem::take(&mut c.warnings),
        events_filter: events_filter(&c.all_names, c.all_widest, as_of_micros),
    })
}

/// Audience inputs without data: empty tables with the columns a run gives profiles (ids,
/// first/last seen, computed traits), accounts and links, and `events` as given. Custom and
/// SQL traits are not known before data is read, so unknown trait keys read as unknown text
/// (`lenient`). Used by `cohort compile`.
pub fn static_inputs(
    space: &crate::spec::Space,
    events: LogicalPlan,
) -> datafusion::common::Result<AudienceInputs> {
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::catalog::MemTable;
    use std::sync::Arc;
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")));
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let computed = |entity: EntityType| {
        space
            .traits
            .iter()
            .filter(move |t| t.entity == entity)
            .filter_map(|t| match crate::spec::query::parsed_trait(t).ok()? {
                ast::Expr::Value {
                    value: Operand::Event(chain),
                    ..
                } => Some(Field::new(
                    t.key.as_str(),
                    reducer_type(chain.reducer?.kind),
                    true,
                )),
                _ => None,
            })
    };
    let rules = super::identity::ResolvedRules::from_spec(&space.identity);
    let mut profile = vec![
        text("profile_id"),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time.clone(), true),
    ];
    for t in &rules.types {
        let name = super::profiles::column_name(&t.id_type);
        profile.push(if t.limit == 1 {
            text(&name)
        } else {
            Field::new(name, super::profiles::utf8_list(), true)
        });
    }
    profile.extend(computed(EntityType::Users));
    let mut account = vec![
        text("account_id"),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time, true),
        Field::new("users", DataType::Int64, true),
    ];
    account.extend(computed(EntityType::Accounts));
    let scan = |name: &str, fields: Vec<Field>| -> datafusion::common::Result<LogicalPlan> {
        let schema = Arc::new(Schema::new(fields));
        let provider = datafusion::datasource::provider_as_source(Arc::new(MemTable::try_new(
            schema,
            vec![vec![]],
        )?));
        LogicalPlanBuilder::scan(name, provider, None)?.build()
    };
    Ok(AudienceInputs {
        profiles: scan("profiles", profile)?,
        events,
        accounts: scan("accounts", account)?,
        links: scan(
            "account_links",
            vec![text("account_id"), text("profile_id")],
        )?,
        data_typed: BTreeSet::new(),
        lenient: true,
    })
}
