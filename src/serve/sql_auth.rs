//! Who may connect to the SQL endpoint, and how: a connection's database names its space and
//! its password must be that space's token, checked by SCRAM-SHA-256 (cleartext passwords only
//! when `cohort serve` is asked for them). An unknown database and a wrong token fail the same
//! way (28P01, after the same exchange), so space names cannot be found by trying; each failed
//! login is logged and answered late, later for each further failure from that address.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::Sink;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, ServerParameterProvider,
    StartupHandler,
};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

/// How passwords travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PasswordMethod {
    /// SCRAM-SHA-256: the token never crosses the wire.
    #[default]
    Scram,
    /// The token as the client sends it (with TLS, encrypted in transit).
    Cleartext,
}

/// PBKDF2 rounds of the SCRAM exchange (Postgres' default).
const SCRAM_ITERATIONS: usize = 4096;

/// The spaces' tokens, and a key for the salts of names that are not spaces.
#[derive(Debug)]
pub(super) struct Tokens {
    tokens: HashMap<String, String>,
    method: PasswordMethod,
    /// Makes each database name's salt: fixed per name for this server's life, so a name
    /// that is no space shows the same salt on every try, as a space does.
    salts: RandomState,
}

impl Tokens {
    pub fn new(tokens: HashMap<String, String>, method: PasswordMethod) -> Tokens {
        Tokens {
            tokens,
            method,
            salts: RandomState::new(),
        }
    }

    fn salt(&self, db: &str) -> Vec<u8> {
        (0..2u8)
            .flat_map(|i| self.salts.hash_one((db, i)).to_le_bytes())
            .collect()
    }
}

#[async_trait]
impl AuthSource for Tokens {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let db = login.database().or(login.user()).unwrap_or_default();
        // A name that is no space gets a password nobody has.
        let token = match self.tokens.get(db) {
            Some(t) => t.clone(),
            None => format!("{:x}{:x}", rand_u64(), rand_u64()),
        };
        Ok(match self.method {
            PasswordMethod::Cleartext => Password::new(None, token.into_bytes()),
            PasswordMethod::Scram => {
                let salt = self.salt(db);
                let salted = gen_salted_password(&token, &salt, SCRAM_ITERATIONS);
                Password::new(Some(salt), salted)
            }
        })
    }
}

fn rand_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// Failed logins per client address, to answer the next one later.
#[derive(Default)]
pub(super) struct Failures(Mutex<HashMap<IpAddr, (u32, Instant)>>);

impl Failures {
    /// How long to hold the answer to a failed login from `ip`, counting it: 250 ms, doubling
    /// with each failure from that address in the last 10 minutes, at most 8 s.
    fn delay(&self, ip: IpAddr) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(600));
        let n = m.entry(ip).or_insert((0, now));
        *n = (n.0 + 1, now);
        Duration::from_millis(250) * 2u32.pow(n.0.min(6) - 1)
    }

    fn forget(&self, ip: IpAddr) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&ip);
    }
}

/// What every connection's login shares.
pub(super) struct Logins {
    tokens: Arc<Tokens>,
    params: Arc<DefaultServerParameterProvider>,
    /// Backend ids and cancel keys, unique across connections.
    keys: Arc<dyn PidSecretKeyGenerator>,
    failures: Failures,
    /// The TLS certificate (PEM), for SCRAM's channel binding over TLS.
    cert_pem: Option<Vec<u8>>,
}

impl Logins {
    pub fn new(
        tokens: Tokens,
        params: DefaultServerParameterProvider,
        cert_pem: Option<Vec<u8>>,
    ) -> Logins {
        Logins {
            tokens: Arc::new(tokens),
            params: Arc::new(params),
            keys: Arc::new(RandomPidSecretKeyGenerator::default()),
            failures: Failures::default(),
            cert_pem,
        }
    }
}

/// The shared tokens as the cleartext handler takes them.
#[derive(Debug)]
struct SharedTokens(Arc<Tokens>);

#[async_trait]
impl AuthSource for SharedTokens {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        self.0.get_password(login).await
    }
}

/// The shared server parameters as the cleartext handler takes them.
struct SharedParams(Arc<DefaultServerParameterProvider>);

impl ServerParameterProvider for SharedParams {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        self.0.server_parameters(client)
    }
}

/// One connection's login: SCRAM or cleartext, with failures logged and slowed.
pub(super) struct Login {
    shared: Arc<Logins>,
    /// Made at the first message, once it is known whether the connection is TLS.
    inner: OnceLock<Inner>,
}

enum Inner {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Cleartext(CleartextPasswordAuthStartupHandler<SharedTokens, SharedParams>),
}

impl Login {
    /// A new connection's login (a SCRAM exchange has state of its own).
    pub fn new(shared: Arc<Logins>) -> Login {
        Login {
            shared,
            inner: OnceLock::new(),
        }
    }

    fn inner(&self, tls: bool) -> Inner {
        let shared = &self.shared;
        match shared.tokens.method {
            PasswordMethod::Scram => {
                let mut scram = ScramAuth::new(shared.tokens.clone());
                scram.set_iterations(SCRAM_ITERATIONS);
                // SCRAM-SHA-256-PLUS binds the exchange to the TLS certificate; it is offered
                // over TLS only (libpq refuses it otherwise).
                if tls && let Some(pem) = &shared.cert_pem {
                    let _ = scram.configure_certificate(pem);
                }
                Inner::Scram(
                    SASLAuthStartupHandler::new(shared.params.clone())
                        .with_scram(scram)
                        .with_pid_secret_key_generator(shared.keys.clone()),
                )
            }
            PasswordMethod::Cleartext => Inner::Cleartext(
                CleartextPasswordAuthStartupHandler::new(
                    SharedTokens(shared.tokens.clone()),
                    SharedParams(shared.params.clone()),
                )
                .with_pid_secret_key_generator(shared.keys.clone()),
            ),
        }
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let password = matches!(message, PgWireFrontendMessage::PasswordMessageFamily(_));
        let inner = self.inner.get_or_init(|| self.inner(client.is_secure()));
        let result = match inner {
            Inner::Scram(h) => h.on_startup(client, message).await,
            Inner::Cleartext(h) => h.on_startup(client, message).await,
        };
        let ip = client.socket_addr().ip();
        // SCRAM's own user name is empty with libpq: name the connection's user.
        let result = match result {
            Err(PgWireError::InvalidPassword(_)) => Err(PgWireError::InvalidPassword(
                client
                    .metadata()
                    .get(pgwire::api::METADATA_USER)
                    .cloned()
                    .unwrap_or_default(),
            )),
            other => other,
        };
        match &result {
            Err(e) if password => {
                let md = client.metadata();
                let db = md
                    .get(pgwire::api::METADATA_DATABASE)
                    .or_else(|| md.get(pgwire::api::METADATA_USER))
                    .cloned()
                    .unwrap_or_default();
                let delay = self.shared.failures.delay(ip);
                tracing::warn!(
                    "SQL login to database \"{db}\" from {} failed ({e}); answering in {} ms",
                    client.socket_addr(),
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
            }
            Ok(())
                if password && matches!(client.state(), PgWireConnectionState::ReadyForQuery) =>
            {
                self.shared.failures.forget(ip)
            }
            _ => {}
        }
        result
    }
}
