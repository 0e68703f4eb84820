//! `cohort serve`: wires the scheduler, the Profile API, the SQL endpoint and the collector
//! together over one or more spaces, each with its own token, output root and run queue.
//! This is the only place that knows them all; each stays ignorant of the others.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::super::args::ServeArgs;
use super::serve_defs::{self, SpaceDefs};
use crate::error::Error;
use crate::read;
use crate::run::{self, RunOptions};
use crate::schedule::{self, RetryPolicy, Runner, Schedules, SystemClock, Trigger};
use crate::serve::api::{self, ApiSpace, RunTrigger};
use crate::serve::collect::{self, CollectConfig, Collector, writer::Thresholds};
use crate::serve::sql::SqlOptions;
use crate::serve::sql_auth::PasswordMethod;
use crate::serve::sql_limits::SqlLimits;
use crate::serve::sql_tls::{self, TlsSource};
use crate::serve::{ServedSpace, token_env_var};
use crate::spec::Space;

/// A token from `--token`, the environment, or fresh random bytes (printed).
fn token_for(space: &str, flags: &[String]) -> Result<(String, bool)> {
    for f in flags {
        let Some((s, t)) = f.split_once('=') else {
            bail!("--token `{f}` is not `space=token`");
        };
        if s == space {
            return Ok((t.to_string(), false));
        }
    }
    if let Ok(t) = std::env::var(token_env_var(space))
        && !t.is_empty()
    {
        return Ok((t, false));
    }
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read random bytes for a token")?;
    Ok((bytes.iter().map(|b| format!("{b:02x}")).collect(), true))
}

/// Runs a space through the engine for the scheduler, then refreshes what serves it.
struct EngineRunner {
    /// The definitions as the space's files are now (read again before every run).
    defs: Arc<SpaceDefs>,
    api: Arc<ApiSpace>,
    skip_bad_files: bool,
}

impl Runner for EngineRunner {
    fn last_started(&self) -> Pin<Box<dyn Future<Output = Option<DateTime<Utc>>> + Send + '_>> {
        Box::pin(async move {
            let space = self.defs.current();
            match read::history::runs(&space).await {
                Ok(runs) => runs.first().map(|r| r.started_at),
                Err(e) => {
                    tracing::warn!("space `{}`: cannot read its runs: {e}", space.name);
                    None
                }
            }
        })
    }
    fn run(
        &self,
        trigger: &Trigger,
        attempt: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + '_>> {
        let describe = if attempt > 1 {
            format!("{} (attempt {attempt})", trigger.describe())
        } else {
            trigger.describe()
        };
        // A scheduled run evaluates what is due (and what that reads); a run asked for
        // evaluates everything.
        let select = match trigger {
            Trigger::Schedule(due) => Some(due.iter().cloned().collect()),
            Trigger::Manual(_) => None,
        };
        Box::pin(async move {
            self.defs.refresh().await;
            let space = self.defs.current();
            let mut opts = RunOptions {
                trigger: Some(describe.clone()),
                lease_wait: Duration::from_secs(600),
                skip_bad_files: self.skip_bad_files,
                ..Default::default()
            };
            opts.select = select;
            if let Some(m) = &space.memory_limit {
                opts.session.memory_limit = crate::spec::parse_memory_limit(m).map(|b| b as usize);
            }
            let started = std::time::Instant::now();
            let report = run::run(&space, &opts, &run::Quiet).await?;
            eprintln!(
                "[{}] run {} of `{}` ({describe}) succeeded in {:.1}s: {} events",
                Utc::now().format("%Y-%m-%d %H:%M:%S"),
                report.record.run_id,
                space.name,
                started.elapsed().as_secs_f64(),
                report.record.events
            );
            if let Err(e) = self.api.refresh().await {
                tracing::warn!("space `{}`: cannot index the new run: {e}", space.name);
            }
            // Delivery runs beside the schedule: a slow webhook never delays the next run.
            tokio::spawn(after_publish(space.clone()));
            Ok(())
        })
    }
}

/// What happens after every run a server publishes: destinations get the changes.
async fn after_publish(space: Space) {
    let space = &space;
    if space.destinations.is_empty() {
        return;
    }
    match crate::serve::destinations::sync(space, &Default::default()).await {
        Ok(r) => {
            for d in &r.destinations {
                eprintln!(
                    "  destination `{}` of `{}`: {} planned, {} delivered, {} dead-lettered{}",
                    d.name,
                    space.name,
                    d.planned,
                    d.delivered,
                    d.dead_lettered,
                    d.error
                        .as_ref()
                        .map(|e| format!("; stopped early: {e}"))
                        .unwrap_or_default()
                );
            }
        }
        Err(e) => tracing::warn!("space `{}`: destinations: {e}", space.name),
    }
}

/// `POST .../runs`: queues a run on the space's scheduler.
struct Triggers(HashMap<String, mpsc::Sender<Trigger>>);

impl RunTrigger for Triggers {
    fn trigger(&self, space: &str) -> bool {
        self.0
            .get(space)
            .is_some_and(|tx| tx.try_send(Trigger::Manual("api".into())).is_ok())
    }
}

pub(in crate::cli) async fn serve(args: ServeArgs, spaces: Vec<Space>) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    let mut served = Vec::new();
    for s in spaces {
        if !names.insert(s.name.clone()) {
            bail!(
                "two spaces are named `{}`: each served space needs its own name",
                s.name
            );
        }
        let (token, generated) = token_for(&s.name, &args.tokens)?;
        if generated {
            eprintln!(
                "space `{}`: token {token} (set {} to keep one)",
                s.name,
                token_env_var(&s.name)
            );
        }
        served.push(ServedSpace { space: s, token });
    }
    let collector = start_collector(&args, &served)?;
    let api_spaces: Vec<Arc<ApiSpace>> = served
        .iter()
        .map(|s| {
            let mut a = ApiSpace::new(s.clone(), args.rate_limit);
            if let Some(l) = collector.as_ref().and_then(|(c, _)| c.live(s.name())) {
                a.set_live(l);
            }
            Arc::new(a)
        })
        .collect();
    for a in &api_spaces {
        a.refresh()
            .await
            .with_context(|| format!("indexing space `{}`", a.served.name()))?;
    }

    // Schedulers: one loop per space, fed by its own trigger queue.
    let mut senders = HashMap::new();
    let mut tasks = Vec::new();
    if !args.no_schedule {
        for a in &api_spaces {
            let schedules = Schedules::for_space(&a.served.space)?;
            let (tx, rx) = mpsc::channel(16);
            senders.insert(a.served.name().to_string(), tx.clone());
            let defs = Arc::new(SpaceDefs::new(a.served.space.clone()));
            tasks.push(tokio::spawn(serve_defs::watch(
                defs.clone(),
                Some(tx.clone()),
            )));
            let runner = EngineRunner {
                defs,
                api: a.clone(),
                skip_bad_files: args.skip_bad_files,
            };
            tasks.push(tokio::spawn(async move {
                schedule::run_schedule(
                    &schedules,
                    &SystemClock,
                    &runner,
                    &RetryPolicy::default(),
                    rx,
                    None,
                )
                .await;
            }));
        }
    } else {
        for a in &api_spaces {
            let defs = Arc::new(SpaceDefs::new(a.served.space.clone()));
            tasks.push(tokio::spawn(serve_defs::watch(defs, None)));
        }
    }
    // Runs published by other processes.
    {
        let spaces = api_spaces.clone();
        let every = Duration::from_secs(args.poll.max(1));
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for a in &spaces {
                    if let Err(e) = a.refresh().await {
                        tracing::warn!("space `{}`: {e}", a.served.name());
                    }
                }
            }
        }));
    }

    let trigger: Option<Arc<dyn RunTrigger>> = if args.no_schedule {
        None
    } else {
        Some(Arc::new(Triggers(senders)))
    };
    let app = api::router(api_spaces.clone(), trigger);
    let api_listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("cannot listen on {} for the Profile API", args.api_addr))?;
    let sql_listener = tokio::net::TcpListener::bind(args.sql_addr)
        .await
        .with_context(|| format!("cannot listen on {} for SQL", args.sql_addr))?;
    let (sql_options, sql_security) = sql_options(&args)?;
    eprintln!(
        "serving {} space(s): Profile API on http://{}, SQL (Postgres wire) on {} ({}){}",
        served.len(),
        api_listener.local_addr()?,
        sql_listener.local_addr()?,
        sql_security,
        if args.no_schedule {
            "; no scheduled runs"
        } else {
            "; scheduler on"
        }
    );
    let sql = tokio::spawn(crate::serve::sql::serve_sql(
        sql_listener,
        served.clone(),
        sql_options,
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let collecting = match collector {
        Some((c, listener)) => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            // Live entries and exits go to destinations as they are found.
            for s in &served {
                if let Some(l) = c.live(s.name()) {
                    tokio::spawn(crate::serve::destinations::live::run(l));
                }
            }
            let app = collect::router(c.clone());
            let server = axum::serve(api::JsonErrorListener(listener), app)
                .with_graceful_shutdown(stopped(stop_rx.clone()));
            Some((c, tokio::spawn(async move { server.await })))
        }
        None => None,
    };
    let http = axum::serve(api::JsonErrorListener(api_listener), app)
        .with_graceful_shutdown(stopped(stop_rx));
    let result = http.await;
    sql.abort();
    for t in tasks {
        t.abort();
    }
    if let Some((c, server)) = collecting {
        let _ = server.await;
        // Everything acknowledged goes to the lake before the process ends; what cannot
        // stays in the log for the next start.
        if tokio::time::timeout(Duration::from_secs(120), c.flush_all())
            .await
            .is_err()
        {
            eprintln!(
                "collector: the lake did not take every event in 2 minutes; the rest stays in the log and is replayed at the next start"
            );
        } else {
            eprintln!("collector: every acknowledged event is in the lake");
        }
    }
    result.context("the Profile API stopped")?;
    eprintln!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the collector's logs (replaying what a previous process left) and its listener,
/// when a served source has write keys.
fn start_collector(
    args: &ServeArgs,
    served: &[ServedSpace],
) -> Result<Option<(Arc<Collector>, std::net::TcpListener)>> {
    if !(args.flush_interval > 0.0 && args.flush_interval.is_finite()) {
        bail!("--flush-interval is a number of seconds above 0");
    }
    let cfg = CollectConfig {
        thresholds: Thresholds {
            bytes: args.flush_size.max(1) * 1024 * 1024,
            age: Duration::from_secs_f64(args.flush_interval),
        },
        log_dir: args.collect_log.clone(),
    };
    let Some(mut c) = Collector::start(served, &cfg).map_err(|e| anyhow::anyhow!("{e}"))? else {
        if let Some(a) = args.collect_addr {
            bail!(
                "--collect-addr {a} was given, but no served source has `write_keys` in its \
                 space.yaml, so there is nothing to collect into"
            );
        }
        return Ok(None);
    };
    // Every collecting space keeps its traits and audiences live.
    for s in served
        .iter()
        .filter(|s| s.space.sources.iter().any(|x| !x.write_keys.is_empty()))
    {
        c.set_live(s.name(), crate::live::LiveSpace::start(s.space.clone())?);
    }
    let addr = args
        .collect_addr
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8089)));
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} for the collector"))?;
    listener.set_nonblocking(true)?;
    eprintln!(
        "collector (Segment's HTTP Tracking API) on http://{} for {}",
        listener.local_addr()?,
        c.sources().join(", ")
    );
    Ok(Some((Arc::new(c), listener)))
}

/// The SQL endpoint's options from the flags, and a line saying how clients connect.
fn sql_options(args: &ServeArgs) -> Result<(SqlOptions, String)> {
    let (source, tls) = match (&args.sql_tls_cert, &args.sql_tls_key) {
        _ if args.sql_no_tls => (TlsSource::Off, "no TLS".to_string()),
        (Some(cert), Some(key)) => (
            TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            format!("TLS with {}", cert.display()),
        ),
        _ => (
            TlsSource::SelfSigned,
            "TLS with a self-signed certificate".to_string(),
        ),
    };
    let passwords = match args.sql_passwords {
        PasswordMethod::Scram => "SCRAM-SHA-256 passwords",
        PasswordMethod::Cleartext => "cleartext passwords",
    };
    let options = SqlOptions {
        limits: SqlLimits {
            statement_timeout: Some(args.sql_statement_timeout).filter(|t| !t.is_zero()),
            memory_limit: args.sql_memory_limit,
            max_queries: args.sql_max_queries,
            threads: args.sql_threads,
        },
        passwords: args.sql_passwords,
        tls: sql_tls::tls(&source).context("the SQL endpoint's TLS")?,
    };
    Ok((options, format!("{tls}, {passwords}")))
}
