//! `event('Name')` chains: their filters (`where`, `within`, `between`) and reducers.

use crate::spec::query::QueryError;
use crate::spec::query::ast::{EventChain, Filter, Literal, Operand, Reducer, ReducerKind, Span};

use super::lex::Tok;
use super::{
    FILTERS, Parser, REDUCERS, Result, WORD_COMPARATORS, did_you_mean, kw, operand_description,
    word_comparator,
};

impl Parser {
    /// `event('Name')` and its methods: filters in any order, then an optional reducer.
    pub(super) fn parse_event(&mut self) -> Result<Operand> {
        let start = self.bump().span;
        self.expect(Tok::LParen, "`(` after `event`")?;
        let (name, name_span) =
            self.string_arg("an event name in quotes, e.g. event('Order Completed')")?;
        if name.is_empty() {
            return Err(QueryError::new(name_span, "the event name is empty"));
        }
        self.expect(Tok::RParen, "`)` after the event name")?;
        let mut filters = Vec::new();
        let mut reducer: Option<Reducer> = None;
        while *self.peek() == Tok::Dot {
            let m = match self.peek_at(1).clone() {
                Tok::Ident(m) => m,
                _ => {
                    self.bump();
                    return Err(self.expected("a method name after `.`"));
                }
            };
            let m_span = self.tokens[self.pos + 1].span;
            if FILTERS.contains(&m.as_str()) {
                if let Some(r) = &reducer {
                    return Err(QueryError::new(
                        m_span,
                        format!(
                            "`.{m}(...)` comes after the reducer `.{}(...)`",
                            r.kind.as_str()
                        ),
                    )
                    .with_help(format!(
                        "filters come first: move `.{m}(...)` before `.{}(...)`",
                        r.kind.as_str()
                    )));
                }
                self.bump();
                self.bump();
                filters.push(self.parse_filter(&m, m_span)?);
            } else if REDUCERS.contains(&m.as_str()) {
                self.bump();
                self.bump();
                match reducer.take() {
                    None => reducer = Some(self.parse_reducer(&m, m_span)?),
                    Some(first) if first.kind == ReducerKind::Unique && m == "count" => {
                        let count = self.parse_reducer(&m, m_span)?;
                        reducer = Some(Reducer {
                            kind: ReducerKind::UniqueCount,
                            arg: first.arg,
                            min_frequency: None,
                            span: first.span.to(count.span),
                        });
                    }
                    Some(first) => {
                        return Err(QueryError::new(
                            m_span,
                            format!(
                                "`.{m}(...)` follows the reducer `.{}(...)`: an event has one reducer",
                                first.kind.as_str()
                            ),
                        )
                        .with_help(
                            "the only chain of two is `.unique(property('x')).count()`; \
                             write a second trait for a second value",
                        ));
                    }
                }
            } else if word_comparator(&m).is_some() {
                break;
            } else {
                let mut names: Vec<&str> = FILTERS.to_vec();
                names.extend(REDUCERS);
                names.extend(WORD_COMPARATORS.iter().map(|(w, _)| *w));
                return Err(QueryError {
                    span: m_span,
                    message: format!("unknown method `.{m}` on `event(...)`"),
                    help: did_you_mean(&m, &names).or_else(|| {
                        Some(format!(
                            "filters: {}; reducers: {}",
                            FILTERS.join(", "),
                            REDUCERS.join(", ")
                        ))
                    }),
                });
            }
        }
        Ok(Operand::Event(EventChain {
            name,
            name_span,
            filters,
            reducer,
            span: Span::new(start.start, self.prev_end()),
        }))
    }

    /// After `.where`, `.within` or `.between` (the name already consumed).
    fn parse_filter(&mut self, m: &str, m_span: Span) -> Result<Filter> {
        self.expect(Tok::LParen, &format!("`(` after `.{m}`"))?;
        let filter = match m {
            "where" => {
                if *self.peek() == Tok::RParen {
                    return Err(self.expected("a condition in `.where(...)`"));
                }
                let (condition, end) = self.nested(m_span, |p| {
                    let condition = p.parse_or()?;
                    let end = p.expect_close(m)?;
                    Ok((condition, end))
                })?;
                Filter::Where {
                    condition: Box::new(condition),
                    span: m_span.to(end),
                }
            }
            "within" => {
                let parent = kw(self.peek(), "parent") && *self.peek_at(1) == Tok::Colon;
                if parent {
                    self.bump();
                    self.bump();
                }
                let (mut window, d_span) =
                    self.parse_duration("a window like `30 days` in `.within(...)`")?;
                if window.amount == 0 {
                    return Err(QueryError::new(d_span, "a window of 0 is empty")
                        .with_help("use at least 1, e.g. `.within(1 days)`"));
                }
                window.parent = parent;
                let end = self.expect_close(m)?;
                Filter::Within {
                    window,
                    span: m_span.to(end),
                }
            }
            _ => {
                if kw(self.peek(), "parent") && *self.peek_at(1) == Tok::Colon {
                    return Err(QueryError::new(
                        self.span(),
                        "`.between(...)` has no `parent:` form",
                    )
                    .with_help(
                        "use `.within(parent: N days)` for a window after the parent event",
                    ));
                }
                let (from, from_span) =
                    self.parse_duration("a duration like `30 days` in `.between(...)`")?;
                self.expect(
                    Tok::Comma,
                    "`,` between the two durations of `.between(A, B)`",
                )?;
                let (to, to_span) =
                    self.parse_duration("a second duration like `90 days` in `.between(A, B)`")?;
                if from.seconds() >= to.seconds() {
                    return Err(QueryError::new(
                        from_span.to(to_span),
                        "`.between(A, B)` needs A shorter than B",
                    )
                    .with_help(
                        "between(A, B) means from B ago up to A ago, e.g. `.between(30 days, 90 days)`",
                    ));
                }
                let end = self.expect_close(m)?;
                Filter::Between {
                    from,
                    to,
                    span: m_span.to(end),
                }
            }
        };
        Ok(filter)
    }

    fn expect_close(&mut self, m: &str) -> Result<Span> {
        if *self.peek() == Tok::RParen {
            return Ok(self.bump().span);
        }
        let found = self.peek().clone();
        let mut e = self.expected(&format!("`)` to close `.{m}(`"));
        if m == "where" {
            e.help = self.comparator_help(&found);
        }
        Err(e)
    }

    /// After a reducer's name (already consumed).
    fn parse_reducer(&mut self, m: &str, m_span: Span) -> Result<Reducer> {
        self.expect(Tok::LParen, &format!("`(` after `.{m}`"))?;
        let kind = match m {
            "count" => ReducerKind::Count,
            "sum" => ReducerKind::Sum,
            "avg" => ReducerKind::Avg,
            "min" => ReducerKind::Min,
            "max" => ReducerKind::Max,
            "mode" => ReducerKind::Mode,
            "first" => ReducerKind::First,
            "last" => ReducerKind::Last,
            _ => ReducerKind::Unique,
        };
        if kind == ReducerKind::Count {
            if *self.peek() != Tok::RParen {
                return Err(self
                    .expected("`)`: `.count()` takes no argument")
                    .with_help(
                        "to count distinct values, write `.unique(property('x')).count()`",
                    ));
            }
            let end = self.bump().span;
            return Ok(Reducer {
                kind,
                arg: None,
                min_frequency: None,
                span: m_span.to(end),
            });
        }
        let example = format!("`.{m}(property('revenue'))`");
        if *self.peek() == Tok::RParen {
            return Err(self
                .expected(&format!("a property to reduce in `.{m}(...)`"))
                .with_help(format!("e.g. {example}")));
        }
        let what = format!("`property('...')` or `context('...')` as the argument of `.{m}(...)`");
        let arg = self.parse_operand(&what)?;
        match &arg {
            Operand::Property { parent: false, .. } | Operand::Context { .. } => {}
            Operand::Property {
                parent: true, span, ..
            } => {
                return Err(QueryError::new(
                    *span,
                    format!("`.{m}(...)` reduces the event's own properties, not the parent's"),
                )
                .with_help(format!("e.g. {example}")));
            }
            other => {
                let help = match other {
                    Operand::Literal {
                        value: Literal::String(s),
                        ..
                    } => format!("write `property('{s}')`"),
                    _ => format!("e.g. {example}"),
                };
                return Err(QueryError::new(
                    other.span(),
                    format!("expected {what}, found {}", operand_description(other)),
                )
                .with_help(help));
            }
        }
        let mut min_frequency = None;
        if *self.peek() == Tok::Comma {
            self.bump();
            if kind != ReducerKind::Mode {
                return Err(QueryError::new(
                    self.span(),
                    format!("`.{m}(...)` takes one argument"),
                )
                .with_help(format!("e.g. {example}")));
            }
            let what = "the minimum frequency of `.mode(...)`, a whole number of at least 1";
            match self.peek().clone() {
                Tok::Number { text, float: false } if !text.starts_with('-') => {
                    let span = self.bump().span;
                    match text.parse::<u64>() {
                        Ok(n) if n >= 1 => min_frequency = Some(n),
                        _ => {
                            return Err(QueryError::new(
                                span,
                                format!("expected {what}, found `{text}`"),
                            )
                            .with_help("e.g. `.mode(property('plan'), 2)`"));
                        }
                    }
                }
                _ => {
                    return Err(self
                        .expected(what)
                        .with_help("e.g. `.mode(property('plan'), 2)`"));
                }
            }
        }
        if *self.peek() != Tok::RParen {
            let mut e = self.expected(&format!("`)` to close `.{m}(`"));
            if *self.peek() == Tok::Comma {
                e.help = Some(format!("`.{m}(...)` takes one argument"));
            }
            return Err(e);
        }
        let end = self.bump().span;
        Ok(Reducer {
            kind,
            arg: Some(Box::new(arg)),
            min_frequency,
            span: m_span.to(end),
        })
    }
}
