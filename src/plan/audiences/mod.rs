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
//!
//! Files: `conditions.rs` (trait lookups, junctions, typed comparisons), `events.rs` (event
//! conditions in the fused aggregation), `funnels.rs` (funnel plans), `accounts.rs` (account
//! leaves and ANY / ALL / NOT ANY over users), `build.rs` (the wide rows and the membership
//! columns in dependency order), `inputs.rs` (inputs without data, for `cohort compile`); this
//! file holds the public types, the compiler's state and the space-level helpers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::plan::traits::QueryCompileError;
use crate::spec::EntityType;
use crate::spec::query::ast::{self, Span};

mod accounts;
mod build;
mod conditions;
mod events;
mod funnels;
mod inputs;

pub use build::audiences_plan;
pub use inputs::static_inputs;

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
}

/// The items of a query's top-level junction (or the query itself).
pub fn top_level_conditions(e: &ast::Expr) -> Vec<&ast::Expr> {
    match e {
        ast::Expr::Or { items, .. } | ast::Expr::And { items, .. } => items.iter().collect(),
        other => vec![other],
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
