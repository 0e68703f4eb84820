//! What the SQL endpoint makes of a statement's text before DataFusion plans it, from one
//! parse: anything but a read is refused, savepoints and `DEALLOCATE` are answered as no-ops,
//! `RESET`s are
//! run by the endpoint (datafusion-postgres refuses them), and a statement that reads tables
//! must take a place among its space's running queries.

use datafusion::sql::sqlparser;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::pgwire;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// What to do with a statement text.
pub(super) enum Intake {
    /// A statement with nothing to do, answered with this command tag. Everything here only
    /// reads, so savepoints (which psycopg and SQLAlchemy send around nested transactions)
    /// have nothing to undo; `DEALLOCATE` (psycopg's, after a rollback) has nothing to free
    /// that the protocol's next Parse of the same name does not replace.
    NoOp(&'static str),
    /// Statements of which some are `RESET`s: the endpoint runs them one by one.
    WithResets(Vec<Statement>),
    /// A `COPY … TO STDOUT`, run by `sql_copy`.
    Copy(super::sql_copy::CopyOut),
    /// For DataFusion; `reads` when it reads tables, `rewritten` the text to run when
    /// `sql_rewrite` changed it.
    Engine {
        reads: bool,
        rewritten: Option<String>,
    },
}

/// What `sql` is, or why it is refused.
pub(super) fn intake(sql: &str) -> PgWireResult<Intake> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let Ok(mut statements) = sqlparser::parser::Parser::parse_sql(&dialect, sql) else {
        // The engine's own parser reports the syntax error (or takes what this one does not).
        return Ok(Intake::Engine {
            reads: true,
            rewritten: None,
        });
    };
    for s in &statements {
        if !is_read_only(s) {
            let first: String = s.to_string().chars().take(60).collect();
            return Err(user_error(
                "25006",
                format!(
                    "the Cohort SQL endpoint is read-only: `{first}` is refused (queries, EXPLAIN, SET, SHOW and transactions are allowed)"
                ),
            ));
        }
    }
    if let [one] = statements.as_slice() {
        if let Some(tag) = no_op_tag(one) {
            return Ok(Intake::NoOp(tag));
        }
        if let Some(copy) = super::sql_copy::copy_out(one)? {
            return Ok(Intake::Copy(copy));
        }
    }
    if statements.iter().any(|s| matches!(s, Statement::Reset(_))) {
        super::sql_rewrite::rewrite(&mut statements);
        return Ok(Intake::WithResets(statements));
    }
    Ok(Intake::Engine {
        reads: statements.iter().any(reads),
        rewritten: rewritten(sql, statements),
    })
}

/// The text to run instead of `sql` when `sql_rewrite` changes it. datafusion-postgres
/// replaces some whole client queries it knows (psql's `\d` queries among them) by matching
/// their text, so a rewrite is made on what it makes of `sql` (that replacement, then its own
/// rewrites), and only when it would change `statements` at all.
fn rewritten(sql: &str, mut statements: Vec<Statement>) -> Option<String> {
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
    static UPSTREAM: std::sync::OnceLock<PostgresCompatibilityParser> = std::sync::OnceLock::new();
    if !super::sql_rewrite::rewrite(&mut statements) {
        return None;
    }
    let mut upstream = UPSTREAM
        .get_or_init(PostgresCompatibilityParser::new)
        .parse(sql)
        .ok()?;
    if !super::sql_rewrite::rewrite(&mut upstream) {
        return None;
    }
    let texts: Vec<String> = upstream.iter().map(|s| s.to_string()).collect();
    Some(texts.join("; "))
}

/// Whether a statement reads tables (and so waits for a place when the space's are taken).
pub(super) fn reads(s: &Statement) -> bool {
    matches!(
        s,
        Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
    )
}

/// Whether a statement only reads: queries, EXPLAIN of a query, SET / SHOW, transactions,
/// cursors over queries.
fn is_read_only(s: &Statement) -> bool {
    use Statement as S;
    match s {
        S::Query(_)
        | S::Set(_)
        | S::ShowVariable { .. }
        | S::ShowVariables { .. }
        | S::ShowTables { .. }
        | S::ShowColumns { .. }
        | S::ShowStatus { .. }
        | S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        | S::Savepoint { .. }
        | S::ReleaseSavepoint { .. }
        | S::Declare { .. }
        | S::Fetch { .. }
        | S::Close { .. }
        | S::Discard { .. }
        | S::Deallocate { .. }
        | S::Reset(_) => true,
        S::Copy {
            to: true,
            target: sqlparser::ast::CopyTarget::Stdout,
            ..
        } => true,
        S::Explain {
            statement, analyze, ..
        } => !analyze && is_read_only(statement),
        _ => false,
    }
}

/// The command tag of a statement with nothing to do.
fn no_op_tag(s: &Statement) -> Option<&'static str> {
    match s {
        Statement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            Some("DEALLOCATE ALL")
        }
        Statement::Deallocate { .. } => Some("DEALLOCATE"),
        Statement::Savepoint { .. } => Some("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Some("RELEASE"),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Some("ROLLBACK"),
        _ => None,
    }
}

pub(super) fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass() {
        for ok in [
            "SELECT 1",
            "select * from profiles; select count(*) from runs",
            "EXPLAIN SELECT * FROM profiles",
            "SET application_name = 'x'",
            "SHOW search_path",
            "BEGIN",
            "COMMIT",
            "SAVEPOINT a",
            "RESET ALL",
        ] {
            assert!(intake(ok).is_ok(), "{ok}");
        }
        for bad in [
            "CREATE TABLE t (a int)",
            "INSERT INTO profiles VALUES (1)",
            "DELETE FROM runs",
            "DROP TABLE profiles",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "EXPLAIN ANALYZE SELECT 1",
            "SELECT 1; DROP TABLE profiles",
            "RESET ALL; DROP TABLE profiles",
        ] {
            assert!(intake(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_statement_is_sorted_out() {
        let kind = |sql: &str| match intake(sql).unwrap() {
            Intake::NoOp(tag) => tag.to_string(),
            Intake::WithResets(s) => format!("resets:{}", s.len()),
            Intake::Engine { reads, .. } => format!("engine:{reads}"),
            Intake::Copy(c) => format!("copy:{}", c.query),
        };
        assert_eq!(kind("SAVEPOINT a"), "SAVEPOINT");
        assert_eq!(kind("RELEASE SAVEPOINT a"), "RELEASE");
        assert_eq!(kind("ROLLBACK TO SAVEPOINT a"), "ROLLBACK");
        assert_eq!(kind("ROLLBACK"), "engine:false");
        assert_eq!(kind("DEALLOCATE ALL"), "DEALLOCATE ALL");
        assert_eq!(kind("DEALLOCATE _pg3_0"), "DEALLOCATE");
        assert_eq!(kind("SET x = 1; RESET x; SELECT 1"), "resets:3");
        assert_eq!(kind("SET statement_timeout = '3s'"), "engine:false");
        assert_eq!(kind("SHOW statement_timeout"), "engine:false");
        assert_eq!(kind("SET x = 1; SELECT 1"), "engine:true");
        assert_eq!(kind("EXPLAIN SELECT 1"), "engine:true");
        assert_eq!(kind("this is not sql"), "engine:true");
        assert_eq!(
            kind("COPY (SELECT 1 AS a) TO STDOUT WITH BINARY"),
            "copy:SELECT 1 AS a"
        );
        assert_eq!(
            kind("COPY profiles (profile_id) TO STDOUT (FORMAT csv, HEADER)"),
            "copy:SELECT profile_id FROM profiles"
        );
    }
}
