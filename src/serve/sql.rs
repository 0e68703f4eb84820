//! The SQL endpoint for BI tools: the Postgres wire protocol (datafusion-postgres, pgwire)
//! over each served space's published tables and its event view, read-only and behind a
//! password.
//!
//! A connection's database names its space (the user name when none is given, as Postgres
//! does) and its password must be that space's token. Each space has its own SessionContext
//! with its own `pg_catalog` and `information_schema`, so nothing of one space is visible from
//! another; each connection plans in a session of its own over that catalog
//! ([`super::sql_session`]), so its `SET`s are its own, and integer sums that overflow fail
//! ([`super::sql_checked`]). Before each statement the space's manifest is read; when a new
//! run has published, the tables are re-registered under a write lock, so a statement plans
//! against one run.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, Parser};
use futures::Sink;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::{Mutex, RwLock};

use super::ServedSpace;
use super::sql_checked::CheckedSums;
use super::sql_session::{Sessions, reset_of, with_resets};
use crate::read;

type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// One space behind the endpoint.
struct SqlSpace {
    served: ServedSpace,
    ctx: Arc<SessionContext>,
    /// Any session's service, for the result types of a parsed statement.
    service: Arc<DfSessionService>,
    /// Each connection's own session over `ctx`'s catalog.
    sessions: Sessions,
    /// The run whose tables are registered; write-locked while they are replaced.
    run: RwLock<Option<String>>,
    refreshing: Mutex<()>,
}

impl SqlSpace {
    async fn new(served: ServedSpace) -> std::io::Result<SqlSpace> {
        let ctx = Arc::new(SessionContext::new_with_config(
            datafusion::prelude::SessionConfig::new().with_information_schema(true),
        ));
        datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
            &ctx,
            "datafusion",
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        register_compat_functions(&ctx);
        ctx.add_analyzer_rule(Arc::new(CheckedSums));
        let service = Arc::new(DfSessionService::new(ctx.clone()));
        Ok(SqlSpace {
            served,
            sessions: Sessions::new(ctx.clone()),
            ctx,
            service,
            run: RwLock::new(None),
            refreshing: Mutex::new(()),
        })
    }

    /// Re-registers the space's tables when a new run has published since the last look.
    async fn refresh(&self) -> PgWireResult<()> {
        let space = &self.served.space;
        let out = read::output_location(space).map_err(api_error)?;
        let current = crate::store::manifest::read(&out)
            .await
            .map_err(|e| api_error(e.into()))?
            .map(|m| m.run_id);
        if current.is_none() || *self.run.read().await == current {
            return Ok(());
        }
        let _one = self.refreshing.lock().await;
        if *self.run.read().await == current {
            return Ok(());
        }
        // Build the new tables' providers first, then swap them in while no statement plans.
        let probe = SessionContext::new();
        read::register_published(&probe, space)
            .await
            .map_err(api_error)?;
        // `events` is the published history; output published before it had one gets the
        // sources' events as of now.
        if probe.table_exist(read::published::EVENTS).unwrap_or(false) {
            read::register_source_views(&probe, space)
                .await
                .map_err(api_error)?;
        } else {
            let now = chrono::Utc::now();
            read::register_events(&probe, space, now, None, None)
                .await
                .map_err(api_error)?;
        }
        let mut run = self.run.write().await;
        for name in probe.catalog_names() {
            let Some(cat) = probe.catalog(&name) else {
                continue;
            };
            for schema in cat.schema_names() {
                let Some(s) = cat.schema(&schema) else {
                    continue;
                };
                for table in s.table_names() {
                    if let Ok(Some(t)) = s.table(&table).await {
                        let _ = self.ctx.deregister_table(table.as_str());
                        self.ctx
                            .register_table(table.as_str(), t)
                            .map_err(|e| api_error(e.into()))?;
                    }
                }
            }
        }
        *run = current;
        Ok(())
    }
}

/// The few Postgres functions client libraries call while connecting that DataFusion lacks:
/// `version()` in Postgres' shape (SQLAlchemy parses it), `pg_get_serial_sequence` (no
/// serial columns here: null) and `to_regtype` (null for an unknown type name).
fn register_compat_functions(ctx: &SessionContext) {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    let version = format!(
        "PostgreSQL 16.6 (Cohort {}) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION")
    );
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    ));
    ctx.register_udf(create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
}

fn api_error(e: crate::error::EngineError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        e.to_string(),
    )))
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
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
        | S::Reset(_) => true,
        S::Explain {
            statement, analyze, ..
        } => !analyze && is_read_only(statement),
        _ => false,
    }
}

/// Refuses anything but reads, naming what was refused.
fn check_read_only(sql: &str) -> PgWireResult<()> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let Ok(statements) = sqlparser::parser::Parser::parse_sql(&dialect, sql) else {
        // Let the engine's own parser report the syntax error.
        return Ok(());
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
    Ok(())
}

/// The command tag of a savepoint statement. Everything here only reads, so savepoints (which
/// psycopg and SQLAlchemy send around nested transactions) have nothing to undo: they succeed
/// as no-ops.
fn savepoint_tag(sql: &str) -> Option<&'static str> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let statements = sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?;
    match statements.as_slice() {
        [Statement::Savepoint { .. }] => Some("SAVEPOINT"),
        [Statement::ReleaseSavepoint { .. }] => Some("RELEASE"),
        [
            Statement::Rollback {
                savepoint: Some(_), ..
            },
        ] => Some("ROLLBACK"),
        _ => None,
    }
}

/// Every space by name.
struct Spaces(HashMap<String, Arc<SqlSpace>>);

impl Spaces {
    /// The connection's space: its database, else its user name.
    fn of<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<&Arc<SqlSpace>> {
        let md = client.metadata();
        let db = md
            .get(pgwire::api::METADATA_DATABASE)
            .or_else(|| md.get(pgwire::api::METADATA_USER))
            .map(String::as_str)
            .unwrap_or_default();
        self.0.get(db).ok_or_else(|| {
            user_error(
                "3D000",
                format!("database \"{db}\" does not exist: connect to a served space's name"),
            )
        })
    }
}

/// Passwords: the token of the space the connection asks for.
#[derive(Debug)]
struct Tokens(HashMap<String, String>);

#[async_trait]
impl AuthSource for Tokens {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let db = login.database().or(login.user()).unwrap_or_default();
        match self.0.get(db) {
            Some(token) => Ok(Password::new(None, token.as_bytes().to_vec())),
            None => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "3D000".into(),
                format!("database \"{db}\" does not exist: connect to a served space's name"),
            )))),
        }
    }
}

/// Routes each statement to its connection's space, after the read-only check.
struct Router {
    spaces: Spaces,
    parser: Arc<RouterParser>,
}

/// The extended protocol's parser, per space.
struct RouterParser {
    spaces: Arc<HashMap<String, Arc<SqlSpace>>>,
    /// Any space's parser: result and parameter types come from the plan alone.
    any: Arc<Parser>,
}

#[async_trait]
impl QueryParser for RouterParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        check_read_only(sql)?;
        if savepoint_tag(sql).is_some() || reset_of(sql).is_some() {
            return Ok(Some((sql.to_string(), None)));
        }
        let space = Spaces((*self.spaces).clone());
        let s = space.of(client)?.clone();
        s.refresh().await?;
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        session.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.any.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.any.get_result_schema(stmt, column_format)
    }
}

#[async_trait]
impl SimpleQueryHandler for Router {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_read_only(query)?;
        if let Some(tag) = savepoint_tag(query) {
            return Ok(vec![Response::Execution(Tag::new(tag))]);
        }
        let s = self.spaces.of(client)?.clone();
        if let Some(statements) = with_resets(query) {
            let mut out = Vec::new();
            for st in statements {
                match st {
                    Statement::Reset(r) => out.push(s.sessions.reset(client, &r.reset)?),
                    other => {
                        s.refresh().await?;
                        let _reading = s.run.read().await;
                        let session = s.sessions.of(client.socket_addr());
                        let sql = other.to_string();
                        out.extend(
                            SimpleQueryHandler::do_query(session.as_ref(), client, &sql).await?,
                        );
                    }
                }
            }
            return Ok(out);
        }
        s.refresh().await?;
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        SimpleQueryHandler::do_query(session.as_ref(), client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Router {
    type Statement = DfStatement;
    type QueryParser = RouterParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = &portal.statement.statement.0;
        if let Some(tag) = savepoint_tag(sql) {
            return Ok(Response::Execution(Tag::new(tag)));
        }
        let s = self.spaces.of(client)?.clone();
        if let Some(reset) = reset_of(sql) {
            return s.sessions.reset(client, &reset);
        }
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        ExtendedQueryHandler::do_query(session.as_ref(), client, portal, max_rows).await
    }
}

/// What pgwire asks for per connection.
struct Handlers {
    router: Arc<Router>,
    startup: Arc<CleartextPasswordAuthStartupHandler<Tokens, DefaultServerParameterProvider>>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.router.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.router.clone()
    }
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }
}

/// Serves `spaces` over the Postgres wire protocol on `listener` until the task is dropped.
pub async fn serve_sql(
    listener: tokio::net::TcpListener,
    spaces: Vec<ServedSpace>,
) -> std::io::Result<()> {
    let mut by_name = HashMap::new();
    let mut tokens = HashMap::new();
    for s in spaces {
        tokens.insert(s.space.name.clone(), s.token.clone());
        by_name.insert(s.space.name.clone(), Arc::new(SqlSpace::new(s).await?));
    }
    let Some(any) = by_name.values().next().map(|s| s.service.query_parser()) else {
        return Err(std::io::Error::other("no space to serve"));
    };
    let shared = Arc::new(by_name.clone());
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = format!("16.6 (Cohort {})", env!("CARGO_PKG_VERSION"));
    let handlers = Arc::new(Handlers {
        router: Arc::new(Router {
            spaces: Spaces(by_name),
            parser: Arc::new(RouterParser {
                spaces: shared,
                any,
            }),
        }),
        startup: Arc::new(CleartextPasswordAuthStartupHandler::new(
            Tokens(tokens),
            params,
        )),
    });
    let spaces = handlers.router.parser.spaces.clone();
    loop {
        let (socket, addr) = listener.accept().await?;
        let h = handlers.clone();
        let spaces = spaces.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, None, h).await {
                tracing::debug!("SQL connection from {addr}: {e}");
            }
            // The connection's session state goes with it.
            for s in spaces.values() {
                s.sessions.close(addr);
            }
        });
    }
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
        ] {
            assert!(check_read_only(ok).is_ok(), "{ok}");
        }
        for bad in [
            "CREATE TABLE t (a int)",
            "INSERT INTO profiles VALUES (1)",
            "DELETE FROM runs",
            "DROP TABLE profiles",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "EXPLAIN ANALYZE SELECT 1",
            "SELECT 1; DROP TABLE profiles",
        ] {
            let e = check_read_only(bad);
            assert!(e.is_err(), "{bad}");
        }
    }
}
