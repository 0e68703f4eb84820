//! The typed form of a Segment Query Language text: what computed traits and audiences say,
//! with the byte span of every part so that later phases can point back into the file. It
//! serializes to JSON (for the HTTP APIs) and knows nothing of how it is evaluated.

use serde::Serialize;

/// A byte range `[start, end)` of the query text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A whole query, or a condition inside `where(...)`.
///
/// A computed trait is a bare [`Expr::Value`] (an event chain ending in a reducer); an audience
/// and a `where` filter are conditions (comparisons joined by junctions).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expr {
    /// `a OR b OR c` (at least two).
    Or { items: Vec<Expr>, span: Span },
    /// `a AND b AND c` (at least two); binds tighter than OR.
    And { items: Vec<Expr>, span: Span },
    /// `NOT a`.
    Not { expr: Box<Expr>, span: Span },
    /// `ANY cond`, `ALL cond`, `NOT ANY cond`: account-level, over the account's users.
    Quantified {
        quantifier: Quantifier,
        expr: Box<Expr>,
        span: Span,
    },
    /// `left <op> right`; `right` is None for `exists` / `absent`.
    Compare {
        left: Operand,
        op: Comparator,
        right: Option<Operand>,
        span: Span,
    },
    /// A value on its own: a computed trait's whole query, or a boolean operand in a condition
    /// (`trait('vip')` alone means `trait('vip') = true`).
    Value { value: Operand, span: Span },
}

impl Expr {
    /// The text this node covers (including parentheses written around it).
    pub fn span(&self) -> Span {
        match self {
            Expr::Or { span, .. }
            | Expr::And { span, .. }
            | Expr::Not { span, .. }
            | Expr::Quantified { span, .. }
            | Expr::Compare { span, .. }
            | Expr::Value { span, .. } => *span,
        }
    }

    pub(crate) fn set_span(&mut self, to: Span) {
        match self {
            Expr::Or { span, .. }
            | Expr::And { span, .. }
            | Expr::Not { span, .. }
            | Expr::Quantified { span, .. }
            | Expr::Compare { span, .. }
            | Expr::Value { span, .. } => *span = to,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantifier {
    Any,
    All,
    NotAny,
}

/// Something that has a value.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operand {
    /// `event('Name')` with filters and (for a value) a reducer.
    Event(EventChain),
    /// `trait('key')`: a custom, computed or SQL trait, or an audience (true when a member).
    Trait { key: String, span: Span },
    /// `property('a.b')` of the current event, or `property(parent: 'a')` of the parent event
    /// in a funnel.
    Property {
        path: String,
        parent: bool,
        span: Span,
    },
    /// `context('a.b')` of the current event.
    Context { path: String, span: Span },
    /// A literal: `literal(...)` or a bare number, string, boolean, list or duration.
    Literal { value: Literal, span: Span },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Event(e) => e.span,
            Operand::Trait { span, .. }
            | Operand::Property { span, .. }
            | Operand::Context { span, .. }
            | Operand::Literal { span, .. } => *span,
        }
    }
}

/// `event('Order Completed').where(...).within(30 days).sum(property('revenue'))`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventChain {
    pub name: String,
    pub name_span: Span,
    /// In the order written; all of them apply.
    pub filters: Vec<Filter>,
    /// None when the chain is used without a reducer (then it means `count() >= 1`).
    pub reducer: Option<Reducer>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Filter {
    /// `.where(condition)`: the condition is over the event's `property`/`context` (and, in a
    /// funnel, child `event(...)` chains and `property(parent: ...)`).
    Where { condition: Box<Expr>, span: Span },
    /// `.within(N unit)` or `.within(parent: N unit)`.
    Within { window: Duration, span: Span },
    /// `.between(A unit, B unit)`: `as_of - B < timestamp <= as_of - A`.
    Between {
        from: Duration,
        to: Duration,
        span: Span,
    },
    /// Never written in a query: a definition with `backfill: false` has it on every event
    /// chain, so that only events after `micros` (UTC microseconds, when the definition first
    /// appeared in the run history) count.
    Since { micros: i64, span: Span },
}

impl Filter {
    pub fn span(&self) -> Span {
        match self {
            Filter::Where { span, .. }
            | Filter::Within { span, .. }
            | Filter::Between { span, .. }
            | Filter::Since { span, .. } => *span,
        }
    }
}

/// `30 days`, `parent: 7 days`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Duration {
    pub amount: u64,
    pub unit: TimeUnit,
    /// Relative to the parent event (funnels) instead of as_of.
    pub parent: bool,
}

impl Duration {
    pub fn seconds(&self) -> i64 {
        self.amount as i64 * self.unit.seconds()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl TimeUnit {
    pub fn seconds(self) -> i64 {
        match self {
            TimeUnit::Minutes => 60,
            TimeUnit::Hours => 3_600,
            TimeUnit::Days => 86_400,
            TimeUnit::Weeks => 604_800,
        }
    }
}

/// `.count()`, `.sum(property('x'))`, `.mode(property('x'), 2)`, `.unique(property('x')).count()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reducer {
    pub kind: ReducerKind,
    /// The reduced value; None only for `count`.
    pub arg: Option<Box<Operand>>,
    /// `mode`'s minimum frequency (default 1).
    pub min_frequency: Option<u64>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReducerKind {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Mode,
    First,
    Last,
    Unique,
    /// `unique(x).count()`.
    UniqueCount,
}

impl ReducerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReducerKind::Count => "count",
            ReducerKind::Sum => "sum",
            ReducerKind::Avg => "avg",
            ReducerKind::Min => "min",
            ReducerKind::Max => "max",
            ReducerKind::Mode => "mode",
            ReducerKind::First => "first",
            ReducerKind::Last => "last",
            ReducerKind::Unique => "unique",
            ReducerKind::UniqueCount => "unique_count",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    StartsWith,
    EndsWith,
    OneOf,
    NoneOf,
    Exists,
    Absent,
    BeforeDate,
    AfterDate,
    WithinLast,
}

impl Comparator {
    /// How the comparator is written in a query.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Contains => "contains",
            Comparator::StartsWith => "starts_with",
            Comparator::EndsWith => "ends_with",
            Comparator::OneOf => "one_of",
            Comparator::NoneOf => "none_of",
            Comparator::Exists => "exists",
            Comparator::Absent => "absent",
            Comparator::BeforeDate => "before_date",
            Comparator::AfterDate => "after_date",
            Comparator::WithinLast => "within_last",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Literal {
    Int(i64),
    Float(f64),
    String(String),
    Bool(bool),
    Null,
    List(Vec<Literal>),
    /// `7 days` (for `within_last`).
    Duration(Duration),
}
