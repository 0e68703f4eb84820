//! The SQL endpoint for BI tools: the Postgres wire protocol (datafusion-postgres, pgwire)
//! over each served space's published tables and its event view, read-only and behind a
//! password.
//!
//! A connection's database names its space (the user name when none is given, as Postgres
//! does) and its password must be that space's token. Each space has its own SessionContext
//! with its own `pg_catalog` and `information_schema`, so nothing of one space is visible from
//! another; each connection plans in a session of its own over that catalog
//! ([`super::sql_session`]), so its `SET`s are its own, and integer sums that overflow fail
//! ([`super::sql_checked`]). Each statement runs under its limits ([`super::sql_limits`]):
//! timeout, cancel, the client going away, a place among its space's running queries. The
//! endpoint runs on a thread pool of its own (see `cohort serve`), so a heavy query does not
//! hold up the Profile API. Before each statement the space's manifest is read; when a new
//! run has published, the tables are re-registered under a write lock, so a statement plans
//! against one run.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, Parser};
use futures::Sink;
use pgwire::api::auth::DefaultServerParameterProvider;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::{Mutex, RwLock};

use super::ServedSpace;
use super::sql_auth::{Login, Logins, PasswordMethod, Tokens};
use super::sql_checked::CheckedSums;
use super::sql_copy::CopyOut;
use super::sql_intake::{Intake, intake, reads, user_error};
use super::sql_limits::{Cancels, Peers, Places, SqlLimits, Stop, memory_error};
use super::sql_pool::Pool;
use super::sql_session::Sessions;
use super::sql_tls::Tls;
use super::sql_yield::YieldingJoins;
use super::{sql_catalog, sql_compat, sql_cursor, sql_params, sql_types};
use crate::read;

pub(super) type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// One space behind the endpoint.
struct SqlSpace {
    served: ServedSpace,
    ctx: Arc<SessionContext>,
    /// Any session's service, for the result types of a parsed statement.
    service: Arc<DfSessionService>,
    /// Each connection's own session over `ctx`'s catalog.
    sessions: Sessions,
    /// Places for the space's queries running at once.
    places: Places,
    /// The threads its queries compute on.
    pool: Pool,
    /// The run whose tables are registered; write-locked while they are replaced.
    run: RwLock<Option<String>>,
    refreshing: Mutex<()>,
}

impl SqlSpace {
    async fn new(served: ServedSpace, limits: &SqlLimits) -> std::io::Result<SqlSpace> {
        // The space is the database: the catalog is named after it (`\l`, `table_catalog`).
        let name = &served.space.name;
        let config = datafusion::prelude::SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(name, "public");
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldingJoins))
            .build();
        let ctx = Arc::new(SessionContext::new_with_state(state));
        datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog(
            &ctx,
            name,
            datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
        )
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        sql_compat::register(&ctx, &served.space.name);
        sql_compat::register_computed(&ctx);
        sql_types::register(&ctx);
        sql_catalog::patch(&ctx, name)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        ctx.add_analyzer_rule(Arc::new(CheckedSums));
        let service = Arc::new(DfSessionService::new(ctx.clone()));
        Ok(SqlSpace {
            pool: Pool::new(&served.space.name, limits.threads)?,
            served,
            sessions: Sessions::new(ctx.clone(), limits.statement_timeout, limits.memory_limit),
            places: Places::new(limits.max_queries),
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

fn api_error(e: crate::error::EngineError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        e.to_string(),
    )))
}

/// Every space by name.
#[derive(Clone)]
struct Spaces(Arc<HashMap<String, Arc<SqlSpace>>>);

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

/// Routes each statement to its connection's space, after the read-only check.
struct Router {
    spaces: Spaces,
    parser: Arc<RouterParser>,
    /// Each connection's socket, to stop its statement when the client goes away.
    peers: Arc<Peers>,
}

/// The extended protocol's parser, per space.
struct RouterParser {
    spaces: Spaces,
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
        let sql = match intake(sql)? {
            // Answered by the endpoint when executed.
            Intake::NoOp(_) | Intake::WithResets(_) | Intake::Copy(_) => {
                return Ok(Some((sql.to_string(), None)));
            }
            Intake::Engine {
                rewritten: Some(text),
                ..
            } => std::borrow::Cow::Owned(text),
            Intake::Engine { .. } => std::borrow::Cow::Borrowed(sql),
        };
        let s = self.spaces.of(client)?.clone();
        s.pool.enter(s.refresh()).await?;
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        let parsed = session
            .query_parser()
            .parse_sql(client, &sql, types)
            .await?;
        match parsed {
            Some((text, Some((st @ Statement::Query(_), plan)))) => {
                let plan = sql_params::keep(plan, sql_params::highest(&sql))
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                Ok(Some((text, Some((st, plan)))))
            }
            other => Ok(other),
        }
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

impl Router {
    /// Runs `sql` (one or more statements, none a `RESET`) in the connection's session under
    /// a new statement's limits; `reads` when it reads tables.
    async fn simple<C>(
        &self,
        s: &SqlSpace,
        client: &mut C,
        sql: &str,
        reads: bool,
    ) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stop = Stop::start(client, Sessions::timeout(client), &self.peers);
        let place = match reads {
            true => Some(s.places.take(&stop).await?),
            false => None,
        };
        stop.run(s.pool.enter(s.refresh())).await?;
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        let out = stop
            .run(
                s.pool
                    .enter(SimpleQueryHandler::do_query(session.as_ref(), client, sql)),
            )
            .await
            .map_err(memory_error)?;
        Ok(stop.guard_all(out, place, &s.pool))
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
        let statements = match intake(query)? {
            Intake::NoOp(tag) => return Ok(vec![Response::Execution(Tag::new(tag))]),
            Intake::Copy(copy) => {
                let s = self.spaces.of(client)?.clone();
                s.sessions.start(client);
                return Ok(vec![self.copy(&s, client, copy).await?]);
            }
            Intake::Engine { reads, rewritten } => {
                let s = self.spaces.of(client)?.clone();
                s.sessions.start(client);
                let sql = rewritten.as_deref().unwrap_or(query);
                return self.simple(&s, client, sql, reads).await;
            }
            Intake::WithResets(statements) => statements,
        };
        let s = self.spaces.of(client)?.clone();
        s.sessions.start(client);
        let mut out = Vec::new();
        for st in statements {
            match st {
                Statement::Reset(r) => out.push(s.sessions.reset(client, &r.reset)?),
                other => {
                    let sql = other.to_string();
                    out.extend(self.simple(&s, client, &sql, reads(&other)).await?);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Router {
    type Statement = DfStatement;
    type QueryParser = RouterParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = match self.cursor_fields(client, target).await? {
            Some(fields) => fields,
            None => self.parser.get_result_schema(
                &target.statement.statement,
                Some(&target.result_column_format),
            )?,
        };
        Ok(DescribePortalResponse::new(fields))
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
        let (sql, parsed) = &portal.statement.statement;
        let s = self.spaces.of(client)?.clone();
        s.sessions.start(client);
        if let Some(declare) = sql_cursor::bound_declare(portal)? {
            // datafusion-postgres would drop the bound values: run it with them written in.
            let mut out = self.simple(&s, client, &declare, false).await?;
            return out
                .pop()
                .ok_or_else(|| user_error("XX000", "the DECLARE gave no answer".into()));
        }
        if parsed.is_none() {
            match intake(sql)? {
                Intake::NoOp(tag) => return Ok(Response::Execution(Tag::new(tag))),
                Intake::Copy(copy) => return self.copy(&s, client, copy).await,
                Intake::WithResets(statements) => {
                    return match statements.as_slice() {
                        [Statement::Reset(r)] => s.sessions.reset(client, &r.reset),
                        _ => Err(user_error(
                            "42601",
                            "cannot insert multiple commands into a prepared statement".into(),
                        )),
                    };
                }
                Intake::Engine { .. } => {}
            }
        }
        let stop = Stop::start(client, Sessions::timeout(client), &self.peers);
        let place = match parsed {
            Some((st, _)) if reads(st) => Some(s.places.take(&stop).await?),
            _ => None,
        };
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        let out = stop
            .run(s.pool.enter(ExtendedQueryHandler::do_query(
                session.as_ref(),
                client,
                portal,
                max_rows,
            )))
            .await
            .map_err(memory_error)?;
        Ok(stop.guard(out, place, &s.pool))
    }
}

impl Router {
    /// Runs a `COPY … TO STDOUT` in the connection's session under a new statement's limits.
    async fn copy<C>(&self, s: &SqlSpace, client: &mut C, copy: CopyOut) -> PgWireResult<Response>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let stop = Stop::start(client, Sessions::timeout(client), &self.peers);
        let place = Some(s.places.take(&stop).await?);
        stop.run(s.pool.enter(s.refresh())).await?;
        let _reading = s.run.read().await;
        let ctx = s.sessions.context(client.socket_addr());
        let out = stop
            .run(s.pool.enter(copy.run(&ctx)))
            .await
            .map_err(memory_error)?;
        Ok(stop.guard(out, place, &s.pool))
    }

    /// The columns of a cursor's query, for a Describe of the cursor's portal or of a
    /// `FETCH` from it (`None` for any other portal).
    async fn cursor_fields<C>(
        &self,
        client: &mut C,
        target: &Portal<DfStatement>,
    ) -> PgWireResult<Option<Vec<FieldInfo>>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
    {
        let query = sql_cursor::described_query(target, |name| {
            let cursor = client.portal_store().get_portal(name)?;
            match cursor {
                pgwire::api::store::Entry::Value(p) => sql_cursor::cursor_text(&p),
                _ => None,
            }
        });
        let Some(query) = query else {
            return Ok(None);
        };
        let s = self.spaces.of(client)?.clone();
        let _reading = s.run.read().await;
        let session = s.sessions.of(client.socket_addr());
        let parsed = s
            .pool
            .enter(session.query_parser().parse_sql(client, &query, &[]))
            .await?;
        match parsed {
            Some(stmt) => Ok(Some(
                self.parser
                    .any
                    .get_result_schema(&stmt, Some(&target.result_column_format))?,
            )),
            None => Ok(Some(Vec::new())),
        }
    }
}

/// What pgwire asks for per connection.
struct Handlers {
    router: Arc<Router>,
    logins: Arc<Logins>,
    cancel: Arc<Cancels>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.router.clone()
    }
    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.router.clone()
    }
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        // Per connection: a SCRAM exchange has state.
        Arc::new(Login::new(self.logins.clone()))
    }
    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// How `cohort serve` runs the endpoint.
#[derive(Default)]
pub struct SqlOptions {
    pub limits: SqlLimits,
    pub passwords: PasswordMethod,
    /// None: plain connections only.
    pub tls: Option<Tls>,
}

/// Serves `spaces` over the Postgres wire protocol on `listener` until the task is dropped.
pub async fn serve_sql(
    listener: tokio::net::TcpListener,
    spaces: Vec<ServedSpace>,
    options: SqlOptions,
) -> std::io::Result<()> {
    let SqlOptions {
        limits,
        passwords,
        tls,
    } = options;
    let mut by_name = HashMap::new();
    let mut tokens = HashMap::new();
    for s in spaces {
        tokens.insert(s.space.name.clone(), s.token.clone());
        by_name.insert(
            s.space.name.clone(),
            Arc::new(SqlSpace::new(s, &limits).await?),
        );
    }
    let Some(any) = by_name.values().next().map(|s| s.service.query_parser()) else {
        return Err(std::io::Error::other("no space to serve"));
    };
    let spaces = Spaces(Arc::new(by_name));
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = format!("16.6 (Cohort {})", env!("CARGO_PKG_VERSION"));
    let peers = Arc::new(Peers::default());
    let handlers = Arc::new(Handlers {
        router: Arc::new(Router {
            spaces: spaces.clone(),
            parser: Arc::new(RouterParser {
                spaces: spaces.clone(),
                any,
            }),
            peers: peers.clone(),
        }),
        logins: Arc::new(Logins::new(
            Tokens::new(tokens, passwords),
            params,
            tls.as_ref().map(|t| t.cert_pem.clone()),
        )),
        cancel: Arc::new(Cancels(peers.clone())),
    });
    let acceptor = tls.map(|t| t.acceptor);
    loop {
        let (socket, addr) = listener.accept().await?;
        let socket = match peers.open(socket, addr) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!("SQL connection from {addr}: {e}");
                continue;
            }
        };
        let h = handlers.clone();
        let spaces = spaces.clone();
        let peers = peers.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, acceptor, h).await {
                tracing::debug!("SQL connection from {addr}: {e}");
            }
            // The connection's session state goes with it.
            peers.close(addr);
            for s in spaces.0.values() {
                s.sessions.close(addr);
            }
        });
    }
}
