//! What bounds one statement of the SQL endpoint, so that no query runs on after nobody wants
//! it and none starves the others: the connection's `statement_timeout` (the server's default
//! until the connection sets its own), the protocol's CancelRequest, the client going away,
//! and the space's limit on queries running at once. (The per-query memory limit is the
//! connection session's memory pool: [`super::sql_session`].)
//!
//! A stopped statement drops its plan and its row stream, which aborts DataFusion's tasks, and
//! answers as Postgres does: 57014 for a timeout or a cancel, 53200 when the memory limit is
//! reached.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::StreamExt;
use futures::future::{FutureExt, Shared};
use futures::stream::empty;
use pgwire::api::ClientInfo;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::results::Response;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::sql_pool::{Items, Pool};

/// The limits `cohort serve` puts on the SQL endpoint.
#[derive(Clone, Debug)]
pub struct SqlLimits {
    /// Each connection's `statement_timeout` until it sets one (None: no limit).
    pub statement_timeout: Option<Duration>,
    /// Bytes one query may hold in memory (its sorts, joins and aggregates).
    pub memory_limit: usize,
    /// Queries of one space running at once; more wait for a place.
    pub max_queries: usize,
    /// Threads of each space's pool for its queries' work (None: one per core).
    pub threads: Option<usize>,
}

impl Default for SqlLimits {
    fn default() -> SqlLimits {
        SqlLimits {
            statement_timeout: None,
            memory_limit: 2 << 30,
            max_queries: 4,
            threads: None,
        }
    }
}

/// How often a running statement looks whether its client is still there.
const PEER_CHECK: Duration = Duration::from_millis(100);

/// One open connection, as its statements' stops see it.
struct Peer {
    /// A second handle on its socket, to see the client go away while a statement runs (the
    /// protocol itself reads nothing then).
    socket: Arc<TcpStream>,
    /// Wakes its running statement on a CancelRequest.
    cancel: Arc<Notify>,
    /// Its backend id and secret key, which a CancelRequest must name (known once it ran a
    /// statement).
    key: Option<(i32, SecretKey)>,
}

/// The open connections of the endpoint.
#[derive(Default)]
pub(super) struct Peers(Mutex<HashMap<SocketAddr, Peer>>);

impl Peers {
    /// Takes `socket`'s connection in, returning the socket to serve it on.
    pub fn open(&self, socket: TcpStream, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = socket.into_std()?;
        let watch = TcpStream::from_std(socket.try_clone()?)?;
        let peer = Peer {
            socket: Arc::new(watch),
            cancel: Arc::new(Notify::new()),
            key: None,
        };
        self.lock().insert(addr, peer);
        TcpStream::from_std(socket)
    }

    pub fn close(&self, addr: SocketAddr) {
        self.lock().remove(&addr);
    }

    /// The socket and cancel signal of `client`'s connection, noting its key.
    fn of<C: ClientInfo + ?Sized>(&self, client: &C) -> Option<(Arc<TcpStream>, Arc<Notify>)> {
        let mut peers = self.lock();
        let peer = peers.get_mut(&client.socket_addr())?;
        peer.key.get_or_insert_with(|| client.pid_and_secret_key());
        Some((peer.socket.clone(), peer.cancel.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Peer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The protocol's CancelRequest (sent on a connection of its own, as psql's Ctrl-C and
/// `conn.cancel()` do): stops the running statement of the connection it names.
pub(super) struct Cancels(pub Arc<Peers>);

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let peers = self.0.lock();
        for peer in peers.values() {
            if let Some((pid, key)) = &peer.key
                && *pid == request.pid
                && key.eq_value(&request.secret_key)
            {
                peer.cancel.notify_waiters();
            }
        }
    }
}

/// Resolves once the client of `socket` has closed its end (or the socket failed).
async fn gone(socket: Arc<TcpStream>) {
    loop {
        match socket.ready(Interest::READABLE).await {
            Ok(r) if r.is_read_closed() => return,
            Ok(_) => tokio::time::sleep(PEER_CHECK).await,
            Err(_) => return,
        }
    }
}

/// Why a statement was stopped.
#[derive(Clone, Copy, Debug)]
enum Reason {
    Cancelled,
    TimedOut,
    Gone,
}

impl Reason {
    fn error(self) -> PgWireError {
        let (severity, code, message) = match self {
            Reason::Cancelled => ("ERROR", "57014", "canceling statement due to user request"),
            Reason::TimedOut => (
                "ERROR",
                "57014",
                "canceling statement due to statement timeout",
            ),
            Reason::Gone => (
                "FATAL",
                "08006",
                "the client went away: its statement was stopped",
            ),
        };
        PgWireError::UserError(Box::new(ErrorInfo::new(
            severity.into(),
            code.into(),
            message.into(),
        )))
    }
}

type Signal = Shared<Pin<Box<dyn Future<Output = Reason> + Send>>>;

/// One statement's reasons to stop, from its start on.
pub(super) struct Stop {
    signal: Signal,
}

impl Stop {
    /// Starts the clock of a statement of `client`'s connection: its `statement_timeout`
    /// (`timeout`), a CancelRequest naming it, and its client going away.
    pub fn start<C: ClientInfo + ?Sized>(
        client: &C,
        timeout: Option<Duration>,
        peers: &Peers,
    ) -> Stop {
        let (peer, cancel) = peers.of(client).unzip();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let signal = async move {
            let cancelled = async move {
                match cancel {
                    Some(cancel) => cancel.notified().await,
                    None => std::future::pending().await,
                }
            };
            let timed_out = async move {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let left = async move {
                match peer {
                    Some(p) => gone(p).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancelled => Reason::Cancelled,
                _ = timed_out => Reason::TimedOut,
                _ = left => Reason::Gone,
            }
        };
        let signal: Pin<Box<dyn Future<Output = Reason> + Send>> = Box::pin(signal);
        Stop {
            signal: signal.shared(),
        }
    }

    /// `work` unless the statement is stopped first (then `work` is dropped).
    pub async fn run<T>(&self, work: impl Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        tokio::select! {
            biased;
            r = self.signal.clone() => Err(r.error()),
            r = work => r,
        }
    }

    /// `response` with its rows produced on `pool` under this statement's stops, holding
    /// `place` (among the space's running queries) until the last row or the stop.
    pub fn guard(
        self,
        response: Response,
        place: Option<OwnedSemaphorePermit>,
        pool: &Pool,
    ) -> Response {
        self.guard_all(vec![response], place, pool)
            .pop()
            .unwrap_or(Response::EmptyQuery)
    }

    /// [`Stop::guard`] for each response of a simple query of several statements.
    pub fn guard_all(
        self,
        responses: Vec<Response>,
        place: Option<OwnedSemaphorePermit>,
        pool: &Pool,
    ) -> Vec<Response> {
        let place = place.map(Arc::new);
        responses
            .into_iter()
            .map(|response| {
                // The stops are watched here, on the connection's side: the pool's threads may
                // all be busy with the very query to stop.
                match response {
                    Response::Query(mut q) => {
                        let rows = std::mem::replace(&mut q.data_rows, Box::pin(empty()));
                        q.data_rows = guarded(pool.drive(rows), self.signal.clone(), place.clone());
                        Response::Query(q)
                    }
                    Response::CopyOut(mut c) => {
                        let rows = std::mem::replace(&mut c.data_stream, Box::pin(empty()));
                        c.data_stream =
                            guarded(pool.drive(rows), self.signal.clone(), place.clone());
                        Response::CopyOut(c)
                    }
                    other => other,
                }
            })
            .collect()
    }
}

fn guarded<T: Send + 'static>(
    rows: Items<T>,
    signal: Signal,
    place: Option<Arc<OwnedSemaphorePermit>>,
) -> Items<T> {
    let state = Some((rows, signal, place));
    Box::pin(futures::stream::unfold(state, |state| async move {
        let (mut rows, signal, place) = state?;
        tokio::select! {
            biased;
            r = signal.clone() => Some((Err(r.error()), None)),
            row = rows.next() => match row {
                Some(Ok(row)) => Some((Ok(row), Some((rows, signal, place)))),
                Some(Err(e)) => Some((Err(memory_error(e)), None)),
                None => None,
            },
        }
    }))
}

/// DataFusion's "Resources exhausted" as Postgres' out-of-memory error (53200), saying which
/// limit was reached; any other error as it is.
pub(super) fn memory_error(e: PgWireError) -> PgWireError {
    let text = e.to_string();
    if !text.contains("Resources exhausted") {
        return e;
    }
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "53200".into(),
        format!(
            "the query needs more memory than a query may use here (cohort serve --sql-memory-limit): {text}"
        ),
    )))
}

/// The places of one space's running queries.
pub(super) struct Places(Arc<Semaphore>);

impl Places {
    pub fn new(n: usize) -> Places {
        Places(Arc::new(Semaphore::new(n.max(1))))
    }

    /// A place, waiting (under the statement's stops) while all are taken.
    pub async fn take(&self, stop: &Stop) -> PgWireResult<OwnedSemaphorePermit> {
        let sem = self.0.clone();
        stop.run(async move {
            sem.acquire_owned()
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e)))
        })
        .await
    }
}
