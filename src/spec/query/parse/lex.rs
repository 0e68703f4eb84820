//! The lexer: query text to tokens (identifiers, strings, numbers, punctuation, comparators),
//! `--` comments skipped.

use crate::spec::query::QueryError;
use crate::spec::query::ast::{Comparator, Span};

use super::Result;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) span: Span,
}

pub(super) fn describe(t: &Tok) -> String {
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

pub(super) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `text` into tokens; the last is always [`Tok::Eof`]. `--` starts a comment that runs
/// to the end of the line.
pub(super) fn lex(text: &str) -> Result<Vec<Token>> {
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
