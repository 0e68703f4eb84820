//! Operands: extractor calls (`trait(...)`, `property(...)`, `context(...)`, `literal(...)`),
//! literals, lists and durations.

use crate::spec::query::QueryError;
use crate::spec::query::ast::{Duration, Literal, Operand, Span};

use super::lex::{Tok, describe};
use super::{
    EXTRACTORS, FILTERS, Parser, REDUCERS, Result, UNITS, WORD_COMPARATORS, did_you_mean, kw, unit,
    word_comparator,
};

impl Parser {
    /// An operand: an extractor call, or a literal. `what` names what was expected, for errors.
    pub(super) fn parse_operand(&mut self, what: &str) -> Result<Operand> {
        let t = self.peek().clone();
        let operand = match &t {
            Tok::Ident(name) if *self.peek_at(1) == Tok::LParen => match name.as_str() {
                "event" => return self.parse_event(),
                "trait" => {
                    let start = self.bump().span;
                    self.bump();
                    let (key, key_span) =
                        self.string_arg("a trait key in quotes, e.g. trait('plan')")?;
                    if key.is_empty() {
                        return Err(QueryError::new(key_span, "`trait('')` needs a key"));
                    }
                    let end = self.expect(Tok::RParen, "`)` after the trait key")?;
                    Operand::Trait {
                        key,
                        span: start.to(end),
                    }
                }
                "property" | "context" => {
                    let start = self.bump().span;
                    self.bump();
                    let parent = name == "property"
                        && kw(self.peek(), "parent")
                        && *self.peek_at(1) == Tok::Colon;
                    if parent {
                        self.bump();
                        self.bump();
                    } else if name == "context"
                        && kw(self.peek(), "parent")
                        && *self.peek_at(1) == Tok::Colon
                    {
                        return Err(QueryError::new(
                            self.span(),
                            "`context(...)` has no `parent:` form",
                        )
                        .with_help(
                            "use `property(parent: '...')` for the parent event's properties",
                        ));
                    }
                    let example = if name == "property" {
                        "a property path in quotes, e.g. property('revenue')"
                    } else {
                        "a context path in quotes, e.g. context('page.path')"
                    };
                    let (path, path_span) = self.string_arg(example)?;
                    if path.is_empty() {
                        return Err(QueryError::new(path_span, format!("`{name}` needs a path")));
                    }
                    let end = self.expect(Tok::RParen, &format!("`)` after the {name} path"))?;
                    let span = start.to(end);
                    if name == "property" {
                        Operand::Property { path, parent, span }
                    } else {
                        Operand::Context { path, span }
                    }
                }
                "literal" => {
                    let start = self.bump().span;
                    self.bump();
                    let (value, _) = self.parse_literal("a literal value in `literal(...)`")?;
                    let end = self.expect(Tok::RParen, "`)` after the literal value")?;
                    Operand::Literal {
                        value,
                        span: start.to(end),
                    }
                }
                other => {
                    let mut help = did_you_mean(other, &EXTRACTORS);
                    if help.is_none()
                        && (REDUCERS.contains(&other)
                            || FILTERS.contains(&other)
                            || word_comparator(other).is_some())
                    {
                        help = Some(format!(
                            "`{other}` is a method: write it after a value, e.g. \
                             event('Order Completed').{other}(...)"
                        ));
                    }
                    return Err(QueryError {
                        span: self.span(),
                        message: format!("unknown function `{other}`"),
                        help: help.or_else(|| {
                            Some("known functions: event, trait, property, context, literal".into())
                        }),
                    });
                }
            },
            Tok::Str(_) | Tok::Number { .. } | Tok::LBracket => {
                let (value, span) = self.parse_literal(what)?;
                Operand::Literal { value, span }
            }
            Tok::Ident(_) if ["true", "false", "null"].iter().any(|k| kw(&t, k)) => {
                let (value, span) = self.parse_literal(what)?;
                Operand::Literal { value, span }
            }
            Tok::Ident(w) => {
                let mut err = self.expected(what);
                err.help = Some(match did_you_mean(w, &EXTRACTORS) {
                    Some(h) => h,
                    None if EXTRACTORS.contains(&w.as_str()) => {
                        format!("`{w}` is a function: write `{w}('...')`")
                    }
                    None => format!("a string is written in quotes: '{w}'"),
                });
                return Err(err);
            }
            _ => {
                let mut err = self.expected(what);
                if what == "a condition" {
                    err.help = Some(
                        "a condition compares values, e.g. trait('plan') = 'pro' or \
                         event('Order Completed').count() >= 1"
                            .into(),
                    );
                }
                return Err(err);
            }
        };
        self.no_event_methods(&operand)?;
        Ok(operand)
    }

    /// After a non-event operand: `.where(...)` and reducers belong to `event(...)` only.
    fn no_event_methods(&self, operand: &Operand) -> Result<()> {
        if *self.peek() != Tok::Dot {
            return Ok(());
        }
        let Tok::Ident(m) = self.peek_at(1) else {
            return Ok(());
        };
        let what = match operand {
            Operand::Trait { .. } => "`trait(...)`",
            Operand::Property { .. } => "`property(...)`",
            Operand::Context { .. } => "`context(...)`",
            Operand::Literal { .. } => "a literal",
            Operand::Event(_) => return Ok(()),
        };
        let span = self.tokens[self.pos + 1].span;
        if FILTERS.contains(&m.as_str()) || REDUCERS.contains(&m.as_str()) {
            return Err(QueryError::new(
                span,
                format!("`.{m}(...)` applies only to `event(...)`, not to {what}"),
            )
            .with_help(
                "filters and reducers follow an event, e.g. \
                 event('Order Completed').within(30 days).count()",
            ));
        }
        if word_comparator(m).is_none() {
            let names: Vec<&str> = WORD_COMPARATORS.iter().map(|(w, _)| *w).collect();
            return Err(QueryError {
                span,
                message: format!("unknown method `.{m}` on {what}"),
                help: did_you_mean(m, &names).or_else(|| {
                    Some(format!(
                        "methods of a value are comparators: {}",
                        names.join(", ")
                    ))
                }),
            });
        }
        Ok(())
    }

    /// `'...'` inside an extractor's parentheses.
    pub(super) fn string_arg(&mut self, what: &str) -> Result<(String, Span)> {
        match self.peek().clone() {
            Tok::Str(s) => Ok((s, self.bump().span)),
            Tok::Ident(w) => {
                let mut e = self.expected(what);
                e.help = Some(format!("write it in quotes: '{w}'"));
                Err(e)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// A literal: a string, a number (or a duration `7 days`), true, false, null or a list.
    fn parse_literal(&mut self, what: &str) -> Result<(Literal, Span)> {
        let t = self.peek().clone();
        match &t {
            Tok::Str(s) => Ok((Literal::String(s.clone()), self.bump().span)),
            Tok::Number { text, float } => {
                if !float
                    && matches!(self.peek_at(1), Tok::Ident(u) if unit(u).is_some())
                    && !text.starts_with('-')
                {
                    let (d, span) = self.parse_duration(what)?;
                    return Ok((Literal::Duration(d), span));
                }
                let span = self.bump().span;
                if *float {
                    let v: f64 = text
                        .parse()
                        .map_err(|_| QueryError::new(span, format!("`{text}` is not a number")))?;
                    Ok((Literal::Float(v), span))
                } else {
                    let v: i64 = text.parse().map_err(|_| {
                        QueryError::new(span, format!("`{text}` is too large for a whole number"))
                            .with_help("whole numbers fit in 64 bits; write a decimal, e.g. 1.0e30 as 1000000000000000000000000000000.0")
                    })?;
                    Ok((Literal::Int(v), span))
                }
            }
            Tok::LBracket => self.parse_list(),
            _ if kw(&t, "true") => Ok((Literal::Bool(true), self.bump().span)),
            _ if kw(&t, "false") => Ok((Literal::Bool(false), self.bump().span)),
            _ if kw(&t, "null") => Ok((Literal::Null, self.bump().span)),
            _ => Err(self.expected(what)),
        }
    }

    /// `['a', 'b']` or `('a', 'b')`.
    pub(super) fn parse_list(&mut self) -> Result<(Literal, Span)> {
        let open = self.bump();
        let close = if open.tok == Tok::LBracket {
            Tok::RBracket
        } else {
            Tok::RParen
        };
        let items = self.list_items(&close, &describe(&open.tok))?;
        let end = self.bump().span;
        Ok((Literal::List(items), open.span.to(end)))
    }

    /// Comma-separated literals up to (not including) `close`; a trailing comma is allowed.
    pub(super) fn list_items(&mut self, close: &Tok, opened: &str) -> Result<Vec<Literal>> {
        let closing = describe(close);
        let mut items = Vec::new();
        loop {
            if self.peek() == close {
                return Ok(items);
            }
            if *self.peek() == Tok::LBracket {
                return Err(
                    self.expected("a string, number, true, false or null: lists do not nest")
                );
            }
            let (item, _) = self.parse_literal(&format!(
                "a list item (a string, number, true, false or null) or {closing}"
            ))?;
            items.push(item);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                t if t == close => {}
                _ => {
                    return Err(self.expected(&format!(
                        "`,` or {closing} to close the list opened with {opened}"
                    )));
                }
            }
        }
    }

    /// `N unit`: a whole, non-negative number of minutes, hours, days or weeks.
    pub(super) fn parse_duration(&mut self, what: &str) -> Result<(Duration, Span)> {
        let (text, float) = match self.peek().clone() {
            Tok::Number { text, float } => (text, float),
            _ => return Err(self.expected(what)),
        };
        let num = self.bump().span;
        if float {
            return Err(
                QueryError::new(num, "a duration is a whole number of units")
                    .with_help("use a smaller unit, e.g. `36 hours` instead of `1.5 days`"),
            );
        }
        if text.starts_with('-') {
            return Err(QueryError::new(num, "a duration cannot be negative"));
        }
        let amount: u64 = text
            .parse()
            .map_err(|_| QueryError::new(num, format!("`{text}` is too large for a duration")))?;
        let unit_tok = self.peek().clone();
        let unit_span = self.span();
        let unit = match &unit_tok {
            Tok::Ident(u) => match unit(u) {
                Some(unit) => unit,
                None => {
                    let names: Vec<&str> = UNITS.iter().map(|(n, _)| *n).collect();
                    let help = did_you_mean(u, &names).unwrap_or_else(|| {
                        if u.to_ascii_lowercase().starts_with("month")
                            || u.to_ascii_lowercase().starts_with("year")
                        {
                            format!("use minutes, hours, days or weeks; `{u}` has no fixed length, so write e.g. `30 days` or `365 days`")
                        } else {
                            "use minutes, hours, days or weeks".into()
                        }
                    });
                    return Err(
                        QueryError::new(unit_span, format!("unknown time unit `{u}`"))
                            .with_help(help),
                    );
                }
            },
            _ => {
                return Err(self
                    .expected(&format!(
                        "a time unit (minutes, hours, days or weeks) after `{text}`"
                    ))
                    .with_help(format!("e.g. `{text} days`")));
            }
        };
        let end = self.bump().span;
        Ok((
            Duration {
                amount,
                unit,
                parent: false,
            },
            num.to(end),
        ))
    }
}
