//! The Segment Query Language's lexer and recursive-descent parser: text in, [`Expr`] out,
//! or one [`QueryError`] that says what was expected, what was found, and where.
//!
//! Files: `lex.rs` (tokens), `conditions.rs` (junctions, prefixes, comparisons),
//! `operands.rs` (extractors, literals, durations), `events.rs` (event chains, filters,
//! reducers); this file holds the entry point, the parser's cursor and the shared words.

use super::QueryError;
use super::ast::{Comparator, Expr, Literal, Operand, Span, TimeUnit};
use crate::spec::suggest;

mod conditions;
mod events;
mod lex;
mod operands;

use lex::{Tok, Token, describe, lex};

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
