//! Per-connection state of the SQL endpoint. Each connection plans and runs in its own
//! `SessionContext`, made from its space's on first use: the catalog (the published tables,
//! `pg_catalog`, `information_schema`) is the space's, shared and read-only, while the
//! configuration is the connection's own. So `SET datafusion.…`, `SET TIME ZONE` and
//! `statement_timeout` change that connection only, `RESET` takes them back to the space's
//! defaults, and a connection's state is dropped when it closes. Each session has a memory
//! pool of its own, so the memory limit holds per connection, that is per running query.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::Reset;
use datafusion_postgres::DfSessionService;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::PgWireResult;

use datafusion_postgres::pgwire;

/// Where datafusion-postgres keeps a connection's `statement_timeout` and time zone: the
/// client's metadata, under these keys.
const METADATA_STATEMENT_TIMEOUT: &str = "statement_timeout_ms";
const METADATA_TIMEZONE: &str = "timezone";
/// Set on a connection's metadata once the server's defaults were given to it.
const METADATA_STARTED: &str = "cohort.session";

/// One connection's context and the service that plans in it.
type Session = (Arc<SessionContext>, Arc<DfSessionService>);

/// The sessions of one space's connections.
pub(super) struct Sessions {
    /// The space's context: its catalog is every session's, its configuration their default.
    base: Arc<SessionContext>,
    by_conn: Mutex<HashMap<SocketAddr, Session>>,
    /// `cohort serve`'s `statement_timeout` for connections that set none.
    timeout: Option<Duration>,
    /// Bytes one connection's query may hold.
    memory_limit: usize,
}

impl Sessions {
    pub fn new(
        base: Arc<SessionContext>,
        timeout: Option<Duration>,
        memory_limit: usize,
    ) -> Sessions {
        Sessions {
            base,
            by_conn: Mutex::new(HashMap::new()),
            timeout,
            memory_limit,
        }
    }

    /// Gives the connection of `client` the server's defaults, on its first statement.
    pub fn start<C: ClientInfo + ?Sized>(&self, client: &mut C) {
        if client.metadata().contains_key(METADATA_STARTED) {
            return;
        }
        client
            .metadata_mut()
            .insert(METADATA_STARTED.into(), String::new());
        self.default_timeout(client);
    }

    /// The connection's `statement_timeout`.
    pub fn timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<Duration> {
        client
            .metadata()
            .get(METADATA_STATEMENT_TIMEOUT)
            .and_then(|ms| ms.parse().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    fn default_timeout<C: ClientInfo + ?Sized>(&self, client: &mut C) {
        match self.timeout {
            Some(t) => client
                .metadata_mut()
                .insert(METADATA_STATEMENT_TIMEOUT.into(), t.as_millis().to_string()),
            None => client.metadata_mut().remove(METADATA_STATEMENT_TIMEOUT),
        };
    }

    /// The session of the connection from `addr`, made on its first statement.
    pub fn of(&self, addr: SocketAddr) -> Arc<DfSessionService> {
        self.session(addr).1
    }

    /// The context of the connection from `addr`'s session.
    pub fn context(&self, addr: SocketAddr) -> Arc<SessionContext> {
        self.session(addr).0
    }

    fn session(&self, addr: SocketAddr) -> Session {
        let mut by_conn = self.by_conn.lock().unwrap_or_else(|p| p.into_inner());
        by_conn
            .entry(addr)
            .or_insert_with(|| {
                let base = self.base.state();
                let runtime = RuntimeEnvBuilder::from_runtime_env(base.runtime_env())
                    .with_memory_limit(self.memory_limit, 1.0)
                    .build_arc();
                let mut state = SessionStateBuilder::new_from_existing(base.clone());
                match runtime {
                    Ok(runtime) => state = state.with_runtime_env(runtime),
                    Err(e) => tracing::warn!(
                        "SQL connection from {addr}: no memory limit for its queries ({e})"
                    ),
                }
                let state = state.build();
                let ctx = Arc::new(SessionContext::new_with_state(state));
                (ctx.clone(), Arc::new(DfSessionService::new(ctx)))
            })
            .clone()
    }

    /// Forgets the connection from `addr` (it closed).
    pub fn close(&self, addr: SocketAddr) {
        let mut by_conn = self.by_conn.lock().unwrap_or_else(|p| p.into_inner());
        by_conn.remove(&addr);
    }

    /// `RESET name` or `RESET ALL` on the connection of `client`: the parameter (or every
    /// one) back to the space's default. Names the endpoint does not keep reset to nothing,
    /// as `SET` of them is accepted and ignored.
    pub fn reset<C: ClientInfo + ?Sized>(
        &self,
        client: &mut C,
        reset: &Reset,
    ) -> PgWireResult<Response> {
        let addr = client.socket_addr();
        match reset {
            Reset::ALL => {
                self.default_timeout(client);
                client.metadata_mut().remove(METADATA_TIMEZONE);
                self.close(addr);
            }
            Reset::ConfigurationParameter(name) => {
                let name = name.to_string().to_lowercase();
                match name.as_str() {
                    "statement_timeout" => self.default_timeout(client),
                    "timezone" | "time zone" => {
                        client.metadata_mut().remove(METADATA_TIMEZONE);
                        self.reset_option(addr, "datafusion.execution.time_zone");
                    }
                    _ => self.reset_option(addr, &name),
                }
            }
        }
        Ok(Response::Execution(Tag::new("RESET")))
    }

    /// The connection's configuration with `key` as in the space's, every other option as
    /// the connection set it.
    fn reset_option(&self, addr: SocketAddr, key: &str) {
        let (ctx, _) = self.session(addr);
        let base: HashMap<String, Option<String>> = self
            .base
            .state()
            .config()
            .options()
            .entries()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        let mut fresh: SessionConfig = self.base.copied_config();
        for e in ctx.state().config().options().entries() {
            if e.key != key
                && base.get(&e.key) != Some(&e.value)
                && let Some(v) = &e.value
            {
                let _ = fresh.options_mut().set(&e.key, v);
            }
        }
        *ctx.state_ref().write().config_mut() = fresh;
    }
}
