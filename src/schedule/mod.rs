//! When runs happen: a cron schedule per definition (croner), catch-up after downtime, one run
//! of a space at a time, retries with backoff. The clock and the runner are injected, so tests
//! drive whole days of schedule in virtual time without running the engine.
//!
//! A tick that finds any definition due starts one run, which evaluates what is due (and what
//! that reads; see `crate::run::due`), and the run record names the definitions that were due. After downtime every definition
//! whose slot passed is due once: missed slots are not replayed one by one.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::spec::Space;

/// Default schedule of computed traits and audiences (when neither the definition nor
/// space.yaml sets one): hourly.
pub const DEFAULT_SCHEDULE: &str = "0 * * * *";
/// Default schedule of SQL traits: every 12 hours.
pub const DEFAULT_SQL_SCHEDULE: &str = "0 */12 * * *";

/// One definition's schedule.
#[derive(Clone, Debug)]
pub struct Entry {
    /// `trait:<key>`, `sql_trait:<key>` or `audience:<key>`.
    pub name: String,
    /// The cron expression as written (or the default).
    pub expr: String,
    cron: Cron,
}

impl Entry {
    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

/// Every definition's schedule in a space.
#[derive(Clone, Debug)]
pub struct Schedules {
    pub entries: Vec<Entry>,
}

/// A schedule that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Croner cannot read the expression.
    #[error("`{expr}` is not a cron schedule: {reason}")]
    BadCron { expr: String, reason: String },
    /// A definition's schedule cannot be read (the file that sets it, or space.yaml).
    #[error("{}: `{expr}` is not a cron schedule: {reason}", file.display())]
    InDefinition {
        file: PathBuf,
        expr: String,
        reason: String,
    },
}

/// Parses a cron expression (5 fields, or 6 with seconds first; macros such as `@hourly`).
pub fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr.trim())
        .map_err(|e| ScheduleError::BadCron {
            expr: expr.to_string(),
            reason: e.to_string(),
        })
}

impl Schedules {
    /// The schedules of `space`'s definitions: each definition's own `schedule`, else
    /// space.yaml's (computed traits and audiences), else the defaults.
    pub fn for_space(space: &Space) -> Result<Schedules, ScheduleError> {
        let default = space.schedule.as_deref().unwrap_or(DEFAULT_SCHEDULE);
        let mut entries = Vec::new();
        let mut add = |name: String, file: &Path, expr: &str| -> Result<(), ScheduleError> {
            let cron = parse_cron(expr).map_err(|e| match e {
                ScheduleError::BadCron { expr, reason }
                | ScheduleError::InDefinition { expr, reason, .. } => ScheduleError::InDefinition {
                    file: file.to_path_buf(),
                    expr,
                    reason,
                },
            })?;
            entries.push(Entry {
                name,
                expr: expr.to_string(),
                cron,
            });
            Ok(())
        };
        for t in &space.traits {
            add(
                format!("trait:{}", t.key),
                &t.file,
                t.schedule.as_deref().unwrap_or(default),
            )?;
        }
        for t in &space.sql_traits {
            add(
                format!("sql_trait:{}", t.key),
                &t.file,
                t.schedule.as_deref().unwrap_or(DEFAULT_SQL_SCHEDULE),
            )?;
        }
        for a in &space.audiences {
            add(
                format!("audience:{}", a.key),
                &a.file,
                a.schedule.as_deref().unwrap_or(default),
            )?;
        }
        let only_identity =
            space.traits.is_empty() && space.sql_traits.is_empty() && space.audiences.is_empty();
        if only_identity {
            // A space with identity only still refreshes its profiles.
            add("profiles".into(), Path::new("space.yaml"), default)?;
        }
        Ok(Schedules { entries })
    }

    /// The definitions due at `now` when the last run started at `last` (none yet: all).
    pub fn due(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| match last {
                None => true,
                Some(last) => e.next_after(last).is_some_and(|slot| slot <= now),
            })
            .map(|e| e.name.clone())
            .collect()
    }

    /// The earliest slot of any definition strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|e| e.next_after(t)).min()
    }
}

/// Where the time comes from: the wall clock, or a test's virtual clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `t` (at once when `t` has passed).
    fn sleep_until(&self, t: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep_until(&self, t: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock whose sleeps jump straight to their end: whole days pass in a moment.
#[derive(Clone)]
pub struct VirtualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> VirtualClock {
        VirtualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }
    /// Moves the clock forward by `d` (a run taking time, say).
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap();
        *now += chrono::Duration::from_std(d).unwrap_or_default();
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }
    fn sleep_until(&self, t: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut now = self.now.lock().unwrap();
        if t > *now {
            *now = t;
        }
        Box::pin(async {})
    }
}

/// Why a run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Definitions whose slot came (their names).
    Schedule(Vec<String>),
    /// Asked for now (`POST .../runs`), with who asked.
    Manual(String),
}

impl Trigger {
    /// How the run record names it: `schedule: audience:a, trait:b` or `manual: api`.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Schedule(due) => format!("schedule: {}", due.join(", ")),
            Trigger::Manual(who) => format!("manual: {who}"),
        }
    }
}

/// What runs a space (the engine, or a test's stand-in).
pub trait Runner: Send + Sync {
    /// When the space's last run (of any outcome) started, from its run history.
    fn last_started(&self) -> Pin<Box<dyn Future<Output = Option<DateTime<Utc>>> + Send + '_>>;
    /// Runs the space once; `attempt` counts from 1. Err says why the run failed.
    fn run(
        &self,
        trigger: &Trigger,
        attempt: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + '_>>;
}

/// How failed runs are retried: after `first`, then doubling, at most `max_attempts` in all.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            first: Duration::from_secs(30),
            max_backoff: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `next` (2, 3, ...).
    pub fn backoff(&self, next: u32) -> Duration {
        let factor = 1u32 << (next.saturating_sub(2)).min(16);
        (self.first * factor).min(self.max_backoff)
    }
}

/// Runs one space on its schedule until `triggers` closes or the clock passes `until`.
///
/// One run at a time: a trigger that arrives during a run waits for it. A run that fails is
/// retried with backoff; once its attempts are spent, the next slot tries again.
pub async fn run_schedule(
    schedules: &Schedules,
    clock: &dyn Clock,
    runner: &dyn Runner,
    retry: &RetryPolicy,
    mut triggers: mpsc::Receiver<Trigger>,
    until: Option<DateTime<Utc>>,
) {
    let mut last = runner.last_started().await;
    let mut triggers_open = true;
    loop {
        let now = clock.now();
        if until.is_some_and(|u| now > u) {
            return;
        }
        let due = schedules.due(last, now);
        if !due.is_empty() {
            last = Some(now);
            run_with_retries(clock, runner, retry, &Trigger::Schedule(due)).await;
            continue;
        }
        let next = schedules.next_after(last.unwrap_or(now).max(now));
        let wake = match (next, until) {
            (Some(n), Some(u)) => Some(n.min(u + chrono::Duration::seconds(1))),
            (n, u) => n.or(u.map(|u| u + chrono::Duration::seconds(1))),
        };
        tokio::select! {
            biased;
            t = triggers.recv(), if triggers_open => match t {
                Some(t) => {
                    last = Some(clock.now());
                    run_with_retries(clock, runner, retry, &t).await;
                }
                None => {
                    triggers_open = false;
                    if until.is_none() {
                        return;
                    }
                }
            },
            _ = async {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
}

/// Runs once, then retries with backoff while it fails and attempts remain.
async fn run_with_retries(
    clock: &dyn Clock,
    runner: &dyn Runner,
    retry: &RetryPolicy,
    t: &Trigger,
) {
    let mut attempt = 1;
    loop {
        match runner.run(t, attempt).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    "run failed (attempt {attempt} of {}): {e}",
                    retry.max_attempts
                );
                if attempt >= retry.max_attempts {
                    return;
                }
                attempt += 1;
                let wait = chrono::Duration::from_std(retry.backoff(attempt)).unwrap_or_default();
                clock.sleep_until(clock.now() + wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
