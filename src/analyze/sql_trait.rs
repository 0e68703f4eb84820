//! SQL traits must be read-only: one SELECT (or WITH ... SELECT, or a UNION of them) over the
//! session's registered tables. This module refuses, before anything runs, every other kind of
//! statement and every query that could read or write outside the session (table functions
//! such as `read_csv`, file-like table names, `SELECT ... INTO`, statements nested in a query).
//! The engine runs the same check again just before it executes the query.

use std::ops::ControlFlow;

use datafusion::execution::context::SQLOptions;
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectNamePart, Select, Spanned, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Location, Span, Token, Tokenizer};

use crate::spec::{Diagnostic, Loc, SqlTraitDef};

const HELP: &str = "a SQL trait is one read-only query (SELECT, or WITH ... SELECT) over the \
                    space's registered tables: its sources by name, `events`, and the tables \
                    of the last published run";

/// What a SQL trait may be when it is planned: one query (no DDL, DML or other statements).
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Every reason `def`'s SQL is not a single read-only query; empty when it is one.
pub fn check_sql_trait(def: &SqlTraitDef) -> Vec<Diagnostic> {
    let at = |line: u64, col: u64, len: usize| Loc {
        file: def.file.clone(),
        line: usize::try_from(line).unwrap_or(1).max(1),
        col: usize::try_from(col).unwrap_or(1).max(1),
        len: len.max(1),
    };
    let first = first_word(&def.sql);
    let refuse = |loc: Loc, reason: String| {
        Diagnostic::error(
            Some(loc),
            format!("SQL trait `{}` is refused: {reason}", def.key),
        )
        .with_help(HELP)
    };
    let statements = match Parser::parse_sql(&GenericDialect, &def.sql) {
        Ok(s) => s,
        Err(e) => {
            // A statement sqlparser does not know (DataFusion's own COPY or CREATE EXTERNAL
            // TABLE, say) is still refused for what it is rather than as a syntax error.
            if let Some((word, loc)) = &first
                && !starts_query(word)
            {
                return vec![refuse(
                    at(loc.line, loc.column, word.chars().count()),
                    statement_reason(word),
                )];
            }
            let (message, loc) = parse_error(&e);
            let loc = loc.map_or_else(|| Loc::file_start(&def.file), |l| at(l.line, l.column, 1));
            return vec![
                Diagnostic::error(
                    Some(loc),
                    format!("SQL trait `{}` does not parse: {message}", def.key),
                )
                .with_help(HELP),
            ];
        }
    };
    let start = first.as_ref().map_or_else(
        || Loc::file_start(&def.file),
        |(w, l)| at(l.line, l.column, w.len()),
    );
    match statements.as_slice() {
        [] => vec![
            Diagnostic::error(
                Some(Loc::file_start(&def.file)),
                format!("SQL trait `{}` has no query", def.key),
            )
            .with_help(HELP),
        ],
        [Statement::Query(_)] => {
            let mut v = ReadOnly {
                depth: 0,
                found: Vec::new(),
            };
            let _ = statements[0].visit(&mut v);
            v.found
                .into_iter()
                .map(|(span, len, reason)| {
                    let loc = if span.start.line == 0 {
                        start.clone()
                    } else {
                        at(span.start.line, span.start.column, len)
                    };
                    refuse(loc, reason)
                })
                .collect()
        }
        [_] => {
            let word = first.as_ref().map_or("", |(w, _)| w.as_str());
            vec![refuse(start, statement_reason(word))]
        }
        [_, second, ..] => {
            let span = second.span();
            let loc = if span.start.line == 0 {
                Loc::file_start(&def.file)
            } else {
                at(span.start.line, span.start.column, 1)
            };
            vec![
                Diagnostic::error(
                    Some(loc),
                    format!(
                        "SQL trait `{}` has {} statements; it must be exactly one query",
                        def.key,
                        statements.len()
                    ),
                )
                .with_help(HELP),
            ]
        }
    }
}

/// The first word of `sql` (uppercased) and where it is, skipping whitespace and comments.
fn first_word(sql: &str) -> Option<(String, Location)> {
    let tokens = Tokenizer::new(&GenericDialect, sql)
        .tokenize_with_location()
        .ok()?;
    let t = tokens
        .into_iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))?;
    let word = match &t.token {
        Token::Word(w) => w.value.to_uppercase(),
        other => other.to_string(),
    };
    Some((word, t.span.start))
}

/// Whether a statement starting with `word` can be a query.
fn starts_query(word: &str) -> bool {
    matches!(word, "SELECT" | "WITH" | "VALUES" | "(" | "FROM" | "TABLE")
}

/// Why a statement that starts with `word` is refused.
fn statement_reason(word: &str) -> String {
    let what = match word {
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "UPSERT" | "REPLACE" => "writes data",
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" | "RENAME" | "ATTACH" | "DETACH" => {
            "changes the catalog"
        }
        "COPY" | "UNLOAD" | "LOAD" | "INSTALL" => "reads or writes files",
        "SET" | "RESET" | "USE" => "changes the session",
        "EXPLAIN" | "DESCRIBE" | "DESC" | "SHOW" => "describes instead of returning rows",
        _ => "is not a query",
    };
    format!("`{word}` {what}; only a read-only query is allowed")
}

/// The parser's message without its position, and the position.
fn parse_error(e: &ParserError) -> (String, Option<Location>) {
    let text = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
        ParserError::RecursionLimitExceeded => return ("the query nests too deeply".into(), None),
    };
    let Some(i) = text.rfind(" at Line: ") else {
        return (text, None);
    };
    let pos = &text[i + " at Line: ".len()..];
    let loc = pos.split_once(", Column: ").and_then(|(l, c)| {
        let column: String = c.chars().take_while(char::is_ascii_digit).collect();
        Some(Location {
            line: l.trim().parse().ok()?,
            column: column.parse().ok()?,
        })
    });
    (text[..i].to_string(), loc)
}

/// The tables a SQL trait's query reads, by name (lowercased unless quoted), with where each
/// is written: every table in a `FROM` or `JOIN` that no `WITH` of the query defines. Empty
/// when the SQL does not parse (its check says why).
pub fn tables_read(def: &SqlTraitDef) -> Vec<(String, Loc)> {
    let Ok(statements) = Parser::parse_sql(&GenericDialect, &def.sql) else {
        return Vec::new();
    };
    let mut w = Tables::default();
    for s in &statements {
        let _ = s.visit(&mut w);
    }
    w.read
        .into_iter()
        .filter(|(n, _)| !w.defined.contains(n))
        .map(|(name, span)| {
            let loc = Loc {
                file: def.file.clone(),
                line: usize::try_from(span.start.line).unwrap_or(1).max(1),
                col: usize::try_from(span.start.column).unwrap_or(1).max(1),
                len: name.chars().count().max(1),
            };
            (name, loc)
        })
        .collect()
}

#[derive(Default)]
struct Tables {
    read: Vec<(String, Span)>,
    defined: Vec<String>,
}

fn table_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) if i.quote_style.is_some() => i.value.clone(),
        Some(ObjectNamePart::Identifier(i)) => i.value.to_lowercase(),
        _ => name.to_string().to_lowercase(),
    }
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, q: &datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.defined.push(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
        {
            self.read.push((table_name(name), name.span()));
        }
        ControlFlow::Continue(())
    }
}

/// Walks a query and records what is not read-only: `(where, underline length, reason)`.
struct ReadOnly {
    depth: usize,
    found: Vec<(Span, usize, String)>,
}

impl Visitor for ReadOnly {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > 1 {
            // A statement inside the query: `WITH x AS (...) INSERT ...`, DML in a CTE.
            let text = s.to_string();
            let word = text.split_whitespace().next().unwrap_or("").to_uppercase();
            self.found
                .push((s.span(), word.chars().count(), statement_reason(&word)));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, _: &Statement) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if let Some(into) = &select.into {
            self.found.push((
                into.name.span(),
                into.name.to_string().chars().count(),
                format!(
                    "`SELECT ... INTO {}` creates a table; only a read-only query is allowed",
                    into.name
                ),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let function = |name: &ObjectName| {
            (
                name.span(),
                name.to_string().chars().count(),
                format!(
                    "`{name}(...)` in FROM is a table function, which can read files or URLs; \
                     query the space's registered tables by name"
                ),
            )
        };
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => self.found.push(function(name)),
            TableFactor::TableFunction { expr, .. } => self.found.push((
                expr.span(),
                1,
                format!(
                    "`{expr}` in FROM is a table function, which can read files or URLs; \
                     query the space's registered tables by name"
                ),
            )),
            TableFactor::Table { name, .. } if file_like(name) => self.found.push((
                name.span(),
                name.to_string().chars().count(),
                format!(
                    "table `{name}` looks like a file or URL; query the space's registered \
                     tables by name"
                ),
            )),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// A table name one of whose parts is a path or URL (`"data/x.csv"`, `'s3://b/k'`).
fn file_like(name: &ObjectName) -> bool {
    name.0.iter().any(|p| match p {
        ObjectNamePart::Identifier(id) => {
            id.value.contains(['/', '\\', ':', '.']) || id.value.starts_with('~')
        }
        ObjectNamePart::Function(_) => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Vec<String> {
        let def = SqlTraitDef {
            key: "t".into(),
            file: "queries/t.sql".into(),
            sql: sql.into(),
            id_column: None,
            id_column_loc: None,
            schedule: None,
            description: None,
            timeout: None,
        };
        check_sql_trait(&def)
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn queries_pass() {
        for sql in [
            "SELECT user_id, count(*) AS n FROM web GROUP BY user_id",
            "-- a comment\nWITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "SELECT a FROM t UNION ALL SELECT b FROM u",
            "SELECT * FROM (SELECT 1) s JOIN t ON true",
            "SELECT t.x FROM t, UNNEST(t.arr) AS u(y)",
            "SELECT user_id FROM web;",
        ] {
            assert_eq!(check(sql), Vec::<String>::new(), "{sql}");
        }
    }

    #[test]
    fn refusals_point_at_the_offending_text() {
        assert_eq!(
            check("\n  DROP TABLE web"),
            [
                "error: queries/t.sql:2:3: SQL trait `t` is refused: `DROP` changes the catalog; \
              only a read-only query is allowed"
            ]
        );
        assert_eq!(
            check("SELECT 1 AS x;\nSELECT 2 AS x"),
            [
                "error: queries/t.sql:2:1: SQL trait `t` has 2 statements; it must be exactly one query"
            ]
        );
        assert_eq!(
            check("SELECT x\nFROM a JOIN read_json('http://h/x') j ON true"),
            [
                "error: queries/t.sql:2:13: SQL trait `t` is refused: `read_json(...)` in FROM is a \
              table function, which can read files or URLs; query the space's registered tables \
              by name"
            ]
        );
        assert_eq!(
            check("SELECT x INTO new_t FROM a"),
            [
                "error: queries/t.sql:1:15: SQL trait `t` is refused: `SELECT ... INTO new_t` \
              creates a table; only a read-only query is allowed"
            ]
        );
        assert_eq!(
            check("SELECT * FROM \"data/x.parquet\""),
            [
                "error: queries/t.sql:1:15: SQL trait `t` is refused: table `\"data/x.parquet\"` \
              looks like a file or URL; query the space's registered tables by name"
            ]
        );
        assert_eq!(
            check("SELECT a b c FROM t"),
            ["error: queries/t.sql:1:12: SQL trait `t` does not parse: \
              Expected: end of statement, found: c"]
        );
        assert_eq!(
            check("COPY (SELECT 1) TO 'x.csv' STORED AS CSV"),
            [
                "error: queries/t.sql:1:1: SQL trait `t` is refused: `COPY` reads or writes files; \
              only a read-only query is allowed"
            ]
        );
    }
}
