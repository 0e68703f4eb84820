//! The Segment Query Language's lexer and recursive-descent parser: text in, [`Expr`] out,
//! or one [`QueryError`] that says what was expected, what was found, and where.

use super::QueryError;
use super::ast::{
    Comparator, Duration, EventChain, Expr, Filter, Literal, Operand, Quantifier, Reducer,
    ReducerKind, Span, TimeUnit,
};
use crate::spec::suggest;

/// The functions that start an operand.
pub(super) const EXTRACTORS: [&str; 5] = ["event", "trait", "property", "context", "literal"];
/// The methods of `event(...)` that narrow its events.
pub(super) const FILTERS: [&str; 3] = ["where", "within", "between"];
/// The methods of `event(...)` that turn its events into one value.
pub(super) const REDUCERS: [&str; 9] = [
    "count", "sum", "avg", "min", "max", "mode", "first", "last", "unique",
];
/// Comparators written as words, infix (`a contains 'x'`) or as methods (`a.contains('x')`).
pub(super) const WORD_COMPARATORS: [(&str, Comparator); 10] = [
    ("contains", Comparator::Contains),
    ("starts_with", Comparator::StartsWith),
    ("ends_with", Comparator::EndsWith),
    ("one_of", Comparator::OneOf),
    ("none_of", Comparator::NoneOf),
    ("exists", Comparator::Exists),
    ("absent", Comparator::Absent),
    ("before_date", Comparator::BeforeDate),
    ("after_date", Comparator::AfterDate),
    ("within_last", Comparator::WithinLast),
];
const UNITS: [(&str, TimeUnit); 8] = [
    ("minute", TimeUnit::Minutes),
    ("minutes", TimeUnit::Minutes),
    ("hour", TimeUnit::Hours),
    ("hours", TimeUnit::Hours),
    ("day", TimeUnit::Days),
    ("days", TimeUnit::Days),
    ("week", TimeUnit::Weeks),
    ("weeks", TimeUnit::Weeks),
];

type Result<T> = std::result::Result<T, QueryError>;

/// How deeply parentheses, `NOT`s, quantifiers and `.where(...)`s may nest. Every later phase
/// (checks, compilation, DataFusion's planner) walks a query recursively, so the bound keeps
/// them all within the stack; real queries nest a handful of levels. Long flat junctions
/// (`a AND b AND ...`) do not nest: they are one list.
pub const MAX_NESTING: usize = 32;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    /// The digits as written, with a leading `-` when negative.
    Number {
        text: String,
        float: bool,
    },
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Colon,
    Op(Comparator, &'static str),
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    span: Span,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => {
            let shown: String = s.chars().take(40).collect();
            let more = if s.chars().count() > 40 { "..." } else { "" };
            format!("the string '{shown}{more}'")
        }
        Tok::Number { text, .. } => format!("the number `{text}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Colon => "`:`".into(),
        Tok::Op(_, s) => format!("`{s}`"),
        Tok::Eof => "the end of the query".into(),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `text` into tokens; the last is always [`Tok::Eof`]. `--` starts a comment that runs
/// to the end of the line.
fn lex(text: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        let one = |tok| Token {
            tok,
            span: Span::new(start, start + c.len_utf8()),
        };
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '-' if text[start..].starts_with("--") => {
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            }
            '(' | ')' | '[' | ']' | ',' | '.' | ':' => {
                chars.next();
                out.push(one(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    ',' => Tok::Comma,
                    '.' => Tok::Dot,
                    _ => Tok::Colon,
                }));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let next = chars.peek().map(|&(_, c)| c);
                let (op, s, two) = match (c, next) {
                    ('=', Some('=')) => (Comparator::Eq, "==", true),
                    ('=', _) => (Comparator::Eq, "=", false),
                    ('!', Some('=')) => (Comparator::Ne, "!=", true),
                    ('<', Some('>')) => (Comparator::Ne, "<>", true),
                    ('<', Some('=')) => (Comparator::Le, "<=", true),
                    ('<', _) => (Comparator::Lt, "<", false),
                    ('>', Some('=')) => (Comparator::Ge, ">=", true),
                    ('>', _) => (Comparator::Gt, ">", false),
                    _ => {
                        return Err(QueryError::new(
                            Span::new(start, start + 1),
                            "unexpected character `!`",
                        )
                        .with_help("write `NOT` to negate a condition, or `!=` for not equal"));
                    }
                };
                if two {
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Op(op, s),
                    span: Span::new(start, start + s.len()),
                });
            }
            '\'' | '"' => {
                chars.next();
                let mut value = String::new();
                let end = loop {
                    match chars.next() {
                        None => {
                            return Err(QueryError::new(
                                Span::new(start, start + 1),
                                format!("unterminated string: expected a closing `{c}`"),
                            )
                            .with_help(format!(
                                "a string ends with the quote it starts with; write `\\{c}` for \
                                 a quote inside it"
                            )));
                        }
                        Some((i, q)) if q == c => break i + 1,
                        Some((i, '\\')) => match chars.next() {
                            Some((_, e @ ('\\' | '\'' | '"'))) => value.push(e),
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, 't')) => value.push('\t'),
                            Some((_, 'r')) => value.push('\r'),
                            Some((_, '0')) => value.push('\0'),
                            Some((j, e)) => {
                                return Err(QueryError::new(
                                    Span::new(i, j + e.len_utf8()),
                                    format!("unknown escape `\\{e}` in a string"),
                                )
                                .with_help(
                                    "known escapes: \\\\ \\' \\\" \\n \\t \\r \\0; write `\\\\` \
                                     for a backslash",
                                ));
                            }
                            None => {
                                return Err(QueryError::new(
                                    Span::new(start, start + 1),
                                    format!("unterminated string: expected a closing `{c}`"),
                                ));
                            }
                        },
                        Some((_, other)) => value.push(other),
                    }
                };
                out.push(Token {
                    tok: Tok::Str(value),
                    span: Span::new(start, end),
                });
            }
            c if c.is_ascii_digit()
                || (c == '-'
                    && text[start + 1..]
                        .chars()
                        .next()
                        .is_some_and(|d| d.is_ascii_digit())) =>
            {
                chars.next();
                let mut end = start + 1;
                let mut float = false;
                while let Some(&(i, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        chars.next();
                        end = i + 1;
                    } else if d == '.'
                        && !float
                        && text[i + 1..]
                            .chars()
                            .next()
                            .is_some_and(|d| d.is_ascii_digit())
                    {
                        chars.next();
                        float = true;
                        end = i + 1;
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Number {
                        text: text[start..end].to_owned(),
                        float,
                    },
                    span: Span::new(start, end),
                });
            }
            c if is_ident_start(c) => {
                let mut end = start;
                while let Some((i, d)) = chars.next_if(|&(_, d)| is_ident_char(d)) {
                    end = i + d.len_utf8();
                }
                out.push(Token {
                    tok: Tok::Ident(text[start..end].to_owned()),
                    span: Span::new(start, end),
                });
            }
            other => {
                let help = match other {
                    '&' => "write `AND` to join conditions",
                    '|' => "write `OR` to join conditions",
                    '\u{2018}' | '\u{2019}' | '\u{201c}' | '\u{201d}' => {
                        "use straight quotes ' or \" around strings"
                    }
                    '-' => "a negative number is written `-5`; comments start with `--`",
                    '~' | '%' | '^' => {
                        "the comparators are =, !=, <, <=, >, >=, contains, starts_with, \
                         ends_with, one_of, none_of, exists, absent, before_date, after_date \
                         and within_last"
                    }
                    _ => {
                        "a query is made of event(...), trait(...), property(...), context(...), \
                         literals, comparators, AND / OR / NOT and parentheses"
                    }
                };
                return Err(QueryError::new(
                    Span::new(start, start + other.len_utf8()),
                    format!("unexpected character `{other}`"),
                )
                .with_help(help));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(text.len(), text.len()),
    });
    Ok(out)
}

/// Parses a whole query text.
pub(super) fn parse(text: &str) -> Result<Expr> {
    let mut p = Parser {
        tokens: lex(text)?,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(QueryError::new(p.span(), "the query is empty"));
    }
    let e = p.parse_or()?;
    match p.peek() {
        Tok::Eof => Ok(e),
        Tok::RParen => Err(QueryError::new(
            p.span(),
            "unmatched `)`: no `(` is open here",
        )),
        _ => {
            let found = p.peek().clone();
            let mut err = QueryError::new(
                p.span(),
                format!(
                    "expected `AND`, `OR` or the end of the query after {}, found {}",
                    p.prev_description(),
                    describe(&found)
                ),
            );
            err.help = p.comparator_help(&found);
            Err(err)
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Open parentheses, prefixes and `.where(`s around the current token.
    depth: usize,
}

fn kw(t: &Tok, word: &str) -> bool {
    matches!(t, Tok::Ident(s) if s.eq_ignore_ascii_case(word))
}

fn word_comparator(s: &str) -> Option<Comparator> {
    WORD_COMPARATORS
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(s))
        .map(|(_, c)| *c)
}

fn unit(s: &str) -> Option<TimeUnit> {
    UNITS
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(s))
        .map(|(_, u)| *u)
}

fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    suggest(word, candidates).map(|s| format!("did you mean `{s}`?"))
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    /// Runs `f` one nesting level deeper, or fails at `at` when that is past [`MAX_NESTING`].
    fn nested<T>(&mut self, at: Span, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_NESTING {
            return Err(QueryError::new(
                at,
                format!(
                    "nesting deeper than {MAX_NESTING} levels (parentheses, `NOT`, `ANY`/`ALL` \
                     and `.where(...)` inside one another)"
                ),
            )
            .with_help(
                "write the condition flatter: `a AND b AND c` needs no parentheses, and \
                 `NOT NOT x` is `x`",
            ));
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    /// The end of the last consumed token.
    fn prev_end(&self) -> usize {
        if self.pos == 0 {
            0
        } else {
            self.tokens[self.pos - 1].span.end
        }
    }

    fn prev_description(&self) -> String {
        if self.pos == 0 {
            "the start of the query".into()
        } else {
            describe(&self.tokens[self.pos - 1].tok)
        }
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    /// "expected {what}, found {the next token}" at the next token.
    fn expected(&self, what: &str) -> QueryError {
        QueryError::new(
            self.span(),
            format!("expected {what}, found {}", describe(self.peek())),
        )
    }

    /// Consumes `tok` or fails with "expected {what}, found ...".
    fn expect(&mut self, tok: Tok, what: &str) -> Result<Span> {
        if *self.peek() == tok {
            Ok(self.bump().span)
        } else {
            Err(self.expected(what))
        }
    }

    /// A "did you mean" for a word found where a comparator or junction could be.
    fn comparator_help(&self, found: &Tok) -> Option<String> {
        let Tok::Ident(w) = found else { return None };
        let mut candidates: Vec<&str> = WORD_COMPARATORS.iter().map(|(w, _)| *w).collect();
        candidates.extend(["AND", "OR"]);
        did_you_mean(w, &candidates)
    }

    fn parse_or(&mut self) -> Result<Expr> {
        let mut items = vec![self.parse_and()?];
        while kw(self.peek(), "or") {
            self.bump();
            items.push(self.parse_and()?);
        }
        Ok(junction(items, |items, span| Expr::Or { items, span }))
    }

    fn parse_and(&mut self) -> Result<Expr> {
        let mut items = vec![self.parse_unary()?];
        while kw(self.peek(), "and") {
            self.bump();
            items.push(self.parse_unary()?);
        }
        Ok(junction(items, |items, span| Expr::And { items, span }))
    }

    /// `NOT x`, `ANY x`, `ALL x`, `NOT ANY x`, or a comparison: prefixes bind tighter than AND.
    fn parse_unary(&mut self) -> Result<Expr> {
        let t = self.peek().clone();
        let quantifier = if kw(&t, "not") && kw(self.peek_at(1), "any") {
            Some(Quantifier::NotAny)
        } else if kw(&t, "any") {
            Some(Quantifier::Any)
        } else if kw(&t, "all") {
            Some(Quantifier::All)
        } else {
            None
        };
        if let Some(quantifier) = quantifier {
            let start = self.bump().span;
            if quantifier == Quantifier::NotAny {
                self.bump();
            }
            let expr = self.nested(start, Self::parse_unary)?;
            let span = start.to(expr.span());
            return Ok(Expr::Quantified {
                quantifier,
                expr: Box::new(expr),
                span,
            });
        }
        if kw(&t, "not") {
            let start = self.bump().span;
            let expr = self.nested(start, Self::parse_unary)?;
            let span = start.to(expr.span());
            return Ok(Expr::Not {
                expr: Box::new(expr),
                span,
            });
        }
        self.parse_comparison()
    }

    /// `( condition )`, or an operand with an optional comparison after it.
    fn parse_comparison(&mut self) -> Result<Expr> {
        if *self.peek() == Tok::LParen {
            let open = self.bump().span;
            let (mut inner, close) = self.nested(open, |p| {
                let inner = p.parse_or()?;
                let close = p.expect(Tok::RParen, "`)` to close the `(`")?;
                Ok((inner, close))
            })?;
            let span = open.to(close);
            if let Expr::Value { value, .. } = &inner
                && self.at_comparator()
            {
                return self.parse_compare_rest(value.clone(), span.start);
            }
            inner.set_span(span);
            return Ok(inner);
        }
        let left = self.parse_operand("a condition")?;
        let start = left.span().start;
        self.parse_compare_rest(left, start)
    }

    /// Whether a comparator (symbol, word or method) comes next.
    fn at_comparator(&self) -> bool {
        match self.peek() {
            Tok::Op(..) => true,
            Tok::Ident(w) => word_comparator(w).is_some(),
            Tok::Dot => matches!(self.peek_at(1), Tok::Ident(w) if word_comparator(w).is_some()),
            _ => false,
        }
    }

    fn parse_compare_rest(&mut self, left: Operand, start: usize) -> Result<Expr> {
        let (op, right) = match self.peek().clone() {
            Tok::Op(op, s) => {
                self.bump();
                let right = self.parse_operand(&format!("a value after `{s}`"))?;
                (op, Some(right))
            }
            Tok::Ident(w) if word_comparator(&w).is_some() => {
                let op = word_comparator(&w).expect("checked");
                self.bump();
                let right = self.parse_right(op, &w)?;
                (op, right)
            }
            Tok::Dot if matches!(self.peek_at(1), Tok::Ident(w) if word_comparator(w).is_some()) => {
                self.bump();
                let name = self.bump();
                let Tok::Ident(w) = &name.tok else {
                    unreachable!()
                };
                let op = word_comparator(w).expect("checked");
                self.expect(Tok::LParen, &format!("`(` after `.{w}`"))?;
                let right = self.parse_method_args(op, w)?;
                self.expect(Tok::RParen, &format!("`)` to close `.{w}(`"))?;
                (op, right)
            }
            _ => {
                let span = left.span();
                return Ok(Expr::Value { value: left, span });
            }
        };
        let span = Span::new(start, self.prev_end());
        Ok(Expr::Compare {
            left,
            op,
            right,
            span,
        })
    }

    /// The right side of an infix word comparator.
    fn parse_right(&mut self, op: Comparator, word: &str) -> Result<Option<Operand>> {
        match op {
            Comparator::Exists | Comparator::Absent => Ok(None),
            Comparator::WithinLast => {
                let (d, span) =
                    self.parse_duration(&format!("a duration like `7 days` after `{word}`"))?;
                Ok(Some(Operand::Literal {
                    value: Literal::Duration(d),
                    span,
                }))
            }
            Comparator::OneOf | Comparator::NoneOf
                if matches!(self.peek(), Tok::LBracket | Tok::LParen) =>
            {
                let (value, span) = self.parse_list()?;
                Ok(Some(Operand::Literal { value, span }))
            }
            Comparator::OneOf | Comparator::NoneOf => Ok(Some(
                self.parse_operand(&format!("a list like ['a', 'b'] after `{word}`"))?,
            )),
            _ => Ok(Some(
                self.parse_operand(&format!("a value after `{word}`"))?,
            )),
        }
    }

    /// The arguments of a method-style comparator, between its parentheses.
    fn parse_method_args(&mut self, op: Comparator, word: &str) -> Result<Option<Operand>> {
        match op {
            Comparator::Exists | Comparator::Absent => {
                if *self.peek() != Tok::RParen {
                    return Err(self.expected(&format!("`)`: `.{word}()` takes no argument")));
                }
                Ok(None)
            }
            Comparator::WithinLast => {
                let (d, span) =
                    self.parse_duration(&format!("a duration like `7 days` in `.{word}(...)`"))?;
                Ok(Some(Operand::Literal {
                    value: Literal::Duration(d),
                    span,
                }))
            }
            Comparator::OneOf | Comparator::NoneOf => {
                if *self.peek() == Tok::LBracket {
                    let (value, span) = self.parse_list()?;
                    return Ok(Some(Operand::Literal { value, span }));
                }
                if matches!(self.peek(), Tok::Ident(w) if EXTRACTORS.contains(&w.as_str()))
                    && *self.peek_at(1) == Tok::LParen
                {
                    return Ok(Some(self.parse_operand("a list")?));
                }
                // `.one_of('a', 'b')`: the arguments are the list.
                let start = self.span().start;
                let items = self.list_items(&Tok::RParen, &format!("`.{word}(`"))?;
                Ok(Some(Operand::Literal {
                    value: Literal::List(items),
                    span: Span::new(start, self.prev_end().max(start)),
                }))
            }
            _ => Ok(Some(
                self.parse_operand(&format!("a value in `.{word}(...)`"))?,
            )),
        }
    }

    /// An operand: an extractor call, or a literal. `what` names what was expected, for errors.
    fn parse_operand(&mut self, what: &str) -> Result<Operand> {
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
    fn string_arg(&mut self, what: &str) -> Result<(String, Span)> {
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
    fn parse_list(&mut self) -> Result<(Literal, Span)> {
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
    fn list_items(&mut self, close: &Tok, opened: &str) -> Result<Vec<Literal>> {
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
    fn parse_duration(&mut self, what: &str) -> Result<(Duration, Span)> {
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

    /// `event('Name')` and its methods: filters in any order, then an optional reducer.
    fn parse_event(&mut self) -> Result<Operand> {
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

/// How an operand is named in messages: `trait(...)`, a number, ...
pub(super) fn operand_description(o: &Operand) -> String {
    match o {
        Operand::Event(_) => "`event(...)`".into(),
        Operand::Trait { .. } => "`trait(...)`".into(),
        Operand::Property { parent: true, .. } => "`property(parent: ...)`".into(),
        Operand::Property { .. } => "`property(...)`".into(),
        Operand::Context { .. } => "`context(...)`".into(),
        Operand::Literal { value, .. } => match value {
            Literal::Int(_) | Literal::Float(_) => "a number".into(),
            Literal::String(_) => "a string".into(),
            Literal::Bool(_) => "a boolean".into(),
            Literal::Null => "`null`".into(),
            Literal::List(_) => "a list".into(),
            Literal::Duration(_) => "a duration".into(),
        },
    }
}

fn junction(mut items: Vec<Expr>, make: impl FnOnce(Vec<Expr>, Span) -> Expr) -> Expr {
    if items.len() == 1 {
        return items.pop().expect("one item");
    }
    let span = items[0].span().to(items[items.len() - 1].span());
    make(items, span)
}
