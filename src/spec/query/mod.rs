//! The Segment Query Language (DESIGN.md §3) that computed traits and audiences are written
//! in: parsing a query text into its typed [`ast`], checking that it has the shape its file
//! needs (a trait is an event with a reducer, an audience a condition), and pointing errors at
//! the file, line and column of the YAML that holds the text. Knows nothing of DataFusion.

pub mod ast;
mod parse;

pub use parse::MAX_NESTING;
#[cfg(test)]
mod tests;

use std::fmt;

use ast::{EventChain, Expr, Filter, Operand, Span};

use super::{AudienceDef, ComputedTraitDef, Diagnostic, EntityType, Loc};

/// Why a query text does not parse or does not fit where it is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    /// The bytes of the query text at fault.
    pub span: Span,
    /// What was expected and what was found, e.g. "expected `)` after the event name, found `.`".
    pub message: String,
    pub help: Option<String>,
}

impl QueryError {
    pub fn new(span: Span, message: impl Into<String>) -> QueryError {
        QueryError {
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> QueryError {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at bytes {}..{})",
            self.message, self.span.start, self.span.end
        )
    }
}

impl std::error::Error for QueryError {}

/// Parses a whole query text (a computed trait's value or a condition); trailing input is an
/// error. The result has only the syntax checked: see [`parse_trait_query`] and
/// [`parse_audience_query`] for the shape each kind of definition needs.
pub fn parse_query(text: &str) -> Result<Expr, QueryError> {
    parse::parse(text)
}

const TRAIT_SHAPE: &str = "a computed trait is an event with a reducer, e.g. \
     event('Order Completed').within(90 days).sum(property('revenue'))";

/// Parses a computed trait's query: one `event(...)` chain that ends in a reducer.
pub fn parse_trait_query(text: &str) -> Result<Expr, QueryError> {
    let e = parse_query(text)?;
    check_trait(&e)?;
    Ok(e)
}

/// Parses an audience's query: a condition. Quantifiers (`ANY`, `ALL`, `NOT ANY`) are only for
/// account audiences.
pub fn parse_audience_query(text: &str, entity: EntityType) -> Result<Expr, QueryError> {
    let e = parse_query(text)?;
    check_condition(&e)?;
    if entity == EntityType::Users
        && let Some(span) = find_quantifier(&e)
    {
        return Err(QueryError::new(
            span,
            "`ANY`, `ALL` and `NOT ANY` are about the users of an account, and this audience \
             is about users",
        )
        .with_help("set `type: accounts` on the audience, or remove the quantifier"));
    }
    Ok(e)
}

/// Checks that `e` is a computed trait's value: a bare `event(...)` chain with a reducer.
pub fn check_trait(e: &Expr) -> Result<(), QueryError> {
    match e {
        Expr::Value {
            value: Operand::Event(chain),
            ..
        } if chain.reducer.is_some() => {
            check_chain(chain, 0)?;
            chain.filters.iter().try_for_each(|f| match f {
                Filter::Where { condition, .. } => check_trait_filter(condition),
                _ => Ok(()),
            })
        }
        Expr::Value {
            value: Operand::Event(_),
            span,
        } => Err(QueryError::new(*span, TRAIT_SHAPE)
            .with_help("add a reducer at the end, e.g. `.count()` or `.sum(property('revenue'))`")),
        Expr::Value { span, .. } => Err(QueryError::new(*span, TRAIT_SHAPE)),
        other => Err(QueryError::new(other.span(), TRAIT_SHAPE).with_help(
            "a condition (a comparison, AND, OR, NOT) is an audience: put it in audiences/<key>.yaml",
        )),
    }
}

/// A computed trait's `.where(...)` looks at one event: no funnels, traits or quantifiers.
fn check_trait_filter(e: &Expr) -> Result<(), QueryError> {
    let operand = |o: &Operand| match o {
        Operand::Event(chain) => Err(QueryError::new(
            chain.span,
            "an event inside a computed trait's `.where(...)` is a funnel, which computed \
             traits do not support",
        )
        .with_help("write the funnel as an audience in audiences/<key>.yaml")),
        Operand::Trait { span, .. } => Err(QueryError::new(
            *span,
            "a computed trait's `.where(...)` compares event fields with literal values; \
             comparing with a trait is for audiences",
        )),
        _ => Ok(()),
    };
    match e {
        Expr::Or { items, .. } | Expr::And { items, .. } => {
            items.iter().try_for_each(check_trait_filter)
        }
        Expr::Not { expr, .. } => check_trait_filter(expr),
        Expr::Quantified { span, .. } => Err(QueryError::new(
            *span,
            "`ANY`, `ALL` and `NOT ANY` combine an account's users; they are for account \
             audiences",
        )),
        Expr::Compare { left, right, .. } => {
            operand(left)?;
            right.as_ref().map_or(Ok(()), operand)
        }
        Expr::Value { value, .. } => operand(value),
    }
}

/// Checks that `e` is a condition an audience can hold: comparisons and boolean values of
/// traits and events, joined by junctions and quantifiers, with `property`/`context` only
/// inside `.where(...)` and `parent:` only where there is a parent event.
pub fn check_condition(e: &Expr) -> Result<(), QueryError> {
    check_cond(e, 0, false)
}

/// `depth` counts the `.where(...)` filters around `e`.
fn check_cond(e: &Expr, depth: usize, quantified: bool) -> Result<(), QueryError> {
    match e {
        Expr::Or { items, .. } | Expr::And { items, .. } => items
            .iter()
            .try_for_each(|i| check_cond(i, depth, quantified)),
        Expr::Not { expr, .. } => check_cond(expr, depth, quantified),
        Expr::Quantified { expr, span, .. } => {
            if depth > 0 {
                return Err(QueryError::new(
                    *span,
                    "`ANY`, `ALL` and `NOT ANY` apply to an account's users and cannot be used \
                     inside `.where(...)`",
                ));
            }
            if quantified {
                return Err(QueryError::new(
                    *span,
                    "a quantifier inside a quantifier: `ANY`, `ALL` and `NOT ANY` cannot nest",
                ));
            }
            check_cond(expr, depth, true)
        }
        Expr::Compare { left, right, .. } => {
            check_compared(left, depth)?;
            if let Some(r) = right {
                check_compared(r, depth)?;
            }
            Ok(())
        }
        Expr::Value { value, .. } => match value {
            Operand::Event(chain) => {
                if let Some(r) = &chain.reducer {
                    return Err(QueryError::new(
                        chain.span,
                        format!("`.{}(...)` gives a value, not a condition", r.kind.as_str()),
                    )
                    .with_help(format!(
                        "compare it, e.g. `event('{}')...{}(...) >= 1`; an event without a \
                         reducer means `.count() >= 1`",
                        chain.name,
                        r.kind.as_str()
                    )));
                }
                check_chain(chain, depth)
            }
            Operand::Trait { .. } => Ok(()),
            Operand::Property { .. } | Operand::Context { .. } => check_operand(value, depth),
            Operand::Literal { span, .. } => Err(QueryError::new(
                *span,
                format!(
                    "{} on its own is not a condition",
                    parse::operand_description(value)
                ),
            )
            .with_help("compare values, e.g. trait('plan') = 'pro'")),
        },
    }
}

/// An operand of a comparison: an event needs a reducer to have a value.
fn check_compared(o: &Operand, depth: usize) -> Result<(), QueryError> {
    if let Operand::Event(chain) = o
        && chain.reducer.is_none()
    {
        return Err(QueryError::new(
            chain.span,
            "an event without a reducer is a condition, not a value to compare",
        )
        .with_help(format!(
            "add a reducer, e.g. `event('{}').count() >= 1`",
            chain.name
        )));
    }
    check_operand(o, depth)
}

fn check_operand(o: &Operand, depth: usize) -> Result<(), QueryError> {
    match o {
        Operand::Event(chain) => check_chain(chain, depth),
        Operand::Property { parent, span, .. } => {
            if depth == 0 {
                Err(QueryError::new(
                    *span,
                    "`property(...)` is a property of an event, so it belongs inside \
                     `.where(...)` or a reducer",
                )
                .with_help(
                    "e.g. event('Order Completed').where(property('total') >= 100).count() >= 1",
                ))
            } else if *parent && depth < 2 {
                Err(QueryError::new(
                    *span,
                    "`property(parent: ...)` needs a parent event: use it inside the \
                     `.where(...)` of an event that is itself inside a `.where(...)`",
                ))
            } else {
                Ok(())
            }
        }
        Operand::Context { span, .. } if depth == 0 => Err(QueryError::new(
            *span,
            "`context(...)` is part of an event, so it belongs inside `.where(...)` or a reducer",
        )),
        _ => Ok(()),
    }
}

/// An event chain at `depth` `.where(...)`s: its filters, windows and reducer argument.
fn check_chain(chain: &EventChain, depth: usize) -> Result<(), QueryError> {
    for f in &chain.filters {
        match f {
            Filter::Where { condition, .. } => check_cond(condition, depth + 1, false)?,
            Filter::Within { window, span } if window.parent && depth == 0 => {
                return Err(QueryError::new(
                    *span,
                    "`.within(parent: ...)` needs a parent event: use it on an event inside \
                     another event's `.where(...)`",
                )
                .with_help(format!(
                    "e.g. event('Checkout Started').where(event('{}').within(parent: 7 days).count() = 0)",
                    chain.name
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn find_quantifier(e: &Expr) -> Option<Span> {
    match e {
        Expr::Quantified { span, .. } => Some(*span),
        Expr::Or { items, .. } | Expr::And { items, .. } => items.iter().find_map(find_quantifier),
        Expr::Not { expr, .. } => find_quantifier(expr),
        Expr::Compare { .. } | Expr::Value { .. } => None,
    }
}

/// Where `span` of the query `text` is in the file, given where the text starts.
///
/// `query_loc` is the first character of the text in the YAML file. On the first line of the
/// text the column advances by characters; a later line `k` (a block scalar, `|` or `>`) is
/// file line `query_loc.line + k`, at `query_loc.col` plus the column in that line (the
/// block's indentation is `query_loc.col - 1`). The length is the characters covered on the
/// span's first line, at least 1.
pub fn span_loc(query_loc: &Loc, text: &str, span: Span) -> Loc {
    let start = floor_boundary(text, span.start.min(text.len()));
    let end = floor_boundary(text, span.end.clamp(start, text.len()));
    let before = &text[..start];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..start].chars().count();
    let covered = &text[start..end];
    let len = covered.split('\n').next().unwrap_or("").chars().count();
    Loc {
        file: query_loc.file.clone(),
        line: query_loc.line + line,
        col: query_loc.col + col,
        len: len.max(1),
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The error [`Diagnostic`] for `e`, at its place in the file.
pub fn query_diagnostic(query_loc: &Loc, text: &str, e: &QueryError) -> Diagnostic {
    let d = Diagnostic::error(Some(span_loc(query_loc, text, e.span)), e.message.clone());
    match &e.help {
        Some(h) => d.with_help(h.clone()),
        None => d,
    }
}

/// A computed trait's query, parsed and checked to be an event with a reducer; with
/// `backfill: false` and a known first appearance, every event chain counts only the events
/// after it (see [`since`]).
pub fn parsed_trait(def: &ComputedTraitDef) -> Result<Expr, Diagnostic> {
    let mut q = parse_trait_query(&def.query)
        .map_err(|e| query_diagnostic(&def.query_loc, &def.query, &e))?;
    if let Some(at) = def.first_seen.filter(|_| !def.backfill) {
        since(&mut q, at.timestamp_micros());
    }
    Ok(q)
}

/// An audience's query, parsed and checked to be a condition (with `backfill: false`, as
/// [`parsed_trait`]).
pub fn parsed_audience(def: &AudienceDef) -> Result<Expr, Diagnostic> {
    let mut q = parse_audience_query(&def.query, def.entity)
        .map_err(|e| query_diagnostic(&def.query_loc, &def.query, &e))?;
    if let Some(at) = def.first_seen.filter(|_| !def.backfill) {
        since(&mut q, at.timestamp_micros());
    }
    Ok(q)
}

/// Adds [`Filter::Since`] to every event chain of `e`, those inside `where(...)` included: only
/// events after `micros` count.
pub fn since(e: &mut Expr, micros: i64) {
    fn operand(o: &mut Operand, micros: i64) {
        if let Operand::Event(chain) = o {
            for f in &mut chain.filters {
                if let Filter::Where { condition, .. } = f {
                    since(condition, micros);
                }
            }
            chain.filters.push(Filter::Since {
                micros,
                span: chain.span,
            });
        }
    }
    match e {
        Expr::Or { items, .. } | Expr::And { items, .. } => {
            items.iter_mut().for_each(|i| since(i, micros))
        }
        Expr::Not { expr, .. } | Expr::Quantified { expr, .. } => since(expr, micros),
        Expr::Compare { left, right, .. } => {
            operand(left, micros);
            if let Some(r) = right {
                operand(r, micros);
            }
        }
        Expr::Value { value, .. } => operand(value, micros),
    }
}
