//! The scheduler in virtual time: due runs, missed runs after downtime, retries, triggers.

use super::*;
use chrono::TimeZone;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, h, m, 0).unwrap()
}

fn schedules(entries: &[(&str, &str)]) -> Schedules {
    Schedules {
        entries: entries
            .iter()
            .map(|(name, expr)| Entry {
                name: name.to_string(),
                expr: expr.to_string(),
                cron: parse_cron(expr).unwrap(),
            })
            .collect(),
    }
}

/// Records every run (virtual time, trigger, attempt); fails the attempts listed in `fail`.
struct Recorder {
    clock: VirtualClock,
    last: Option<DateTime<Utc>>,
    /// (run number from 1, attempt) pairs that fail.
    fail: Vec<(usize, u32)>,
    /// How long a run takes in virtual time.
    takes: Duration,
    runs: Mutex<Vec<(DateTime<Utc>, Trigger, u32)>>,
}

impl Runner for Recorder {
    fn last_started(&self) -> Pin<Box<dyn Future<Output = Option<DateTime<Utc>>> + Send + '_>> {
        Box::pin(async move { self.last })
    }
    fn run(
        &self,
        trigger: &Trigger,
        attempt: u32,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + '_>> {
        let mut runs = self.runs.lock().unwrap();
        runs.push((self.clock.now(), trigger.clone(), attempt));
        let number = runs.iter().filter(|r| r.2 == 1).count();
        let fails = self.fail.contains(&(number, attempt));
        self.clock.advance(self.takes);
        Box::pin(async move {
            if fails {
                Err(Error::Source {
                    source_name: "web".into(),
                    reason: "unreachable".into(),
                })
            } else {
                Ok(())
            }
        })
    }
}

fn recorder(
    clock: &VirtualClock,
    last: Option<DateTime<Utc>>,
    fail: Vec<(usize, u32)>,
) -> Recorder {
    Recorder {
        clock: clock.clone(),
        last,
        fail,
        takes: Duration::from_secs(90),
        runs: Mutex::new(Vec::new()),
    }
}

async fn drive(s: &Schedules, clock: &VirtualClock, r: &Recorder, until: DateTime<Utc>) {
    let (_tx, rx) = mpsc::channel(1);
    run_schedule(s, clock, r, &RetryPolicy::default(), rx, Some(until)).await;
}

#[tokio::test]
async fn runs_each_slot_once_with_what_is_due() {
    let s = schedules(&[
        ("audience:a", "0 * * * *"),
        ("sql_trait:ltv", DEFAULT_SQL_SCHEDULE),
    ]);
    let clock = VirtualClock::new(t(0, 10));
    let r = recorder(&clock, Some(t(0, 5)), vec![]);
    drive(&s, &clock, &r, t(12, 30)).await;
    let runs = r.runs.lock().unwrap();
    // 01:00 .. 12:00: twelve hourly slots; the SQL trait is due only at 12:00.
    assert_eq!(runs.len(), 12, "{runs:?}");
    assert_eq!(runs[0].0, t(1, 0));
    assert_eq!(runs[0].1, Trigger::Schedule(vec!["audience:a".into()]));
    assert_eq!(runs[10].0, t(11, 0));
    assert_eq!(
        runs[11],
        (
            t(12, 0),
            Trigger::Schedule(vec!["audience:a".into(), "sql_trait:ltv".into()]),
            1
        )
    );
}

#[tokio::test]
async fn after_downtime_a_missed_schedule_runs_once() {
    let s = schedules(&[("audience:a", "0 * * * *"), ("trait:b", "*/15 * * * *")]);
    // The last run started at 02:00; the server comes back at 07:20.
    let clock = VirtualClock::new(t(7, 20));
    let r = recorder(&clock, Some(t(2, 0)), vec![]);
    drive(&s, &clock, &r, t(7, 40)).await;
    let runs = r.runs.lock().unwrap();
    assert_eq!(
        runs[0],
        (
            t(7, 20),
            Trigger::Schedule(vec!["audience:a".into(), "trait:b".into()]),
            1
        ),
        "one catch-up run for twenty missed slots"
    );
    // Then the regular quarter-hour slot; the run took 90 s, so 07:30 is next.
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].0, t(7, 30));
    assert_eq!(runs[1].1, Trigger::Schedule(vec!["trait:b".into()]));
}

#[tokio::test]
async fn a_space_never_run_runs_at_once() {
    let s = schedules(&[("audience:a", "0 0 * * *")]);
    let clock = VirtualClock::new(t(9, 0));
    let r = recorder(&clock, None, vec![]);
    drive(&s, &clock, &r, t(10, 0)).await;
    let runs = r.runs.lock().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, t(9, 0));
}

#[tokio::test]
async fn failed_runs_retry_with_backoff_then_wait_for_the_next_slot() {
    let s = schedules(&[("audience:a", "0 * * * *")]);
    let clock = VirtualClock::new(t(0, 59));
    // Run 1 fails all four attempts; run 2 fails once, then succeeds.
    let r = recorder(
        &clock,
        Some(t(0, 0)),
        vec![(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)],
    );
    drive(&s, &clock, &r, t(2, 30)).await;
    let runs = r.runs.lock().unwrap();
    let at: Vec<(DateTime<Utc>, u32)> = runs.iter().map(|r| (r.0, r.2)).collect();
    let s90 = chrono::Duration::seconds(90);
    let secs = chrono::Duration::seconds;
    assert_eq!(
        at,
        vec![
            (t(1, 0), 1),
            (t(1, 0) + s90 + secs(30), 2),
            (t(1, 0) + s90 * 2 + secs(30 + 60), 3),
            (t(1, 0) + s90 * 3 + secs(30 + 60 + 120), 4),
            (t(2, 0), 1),
            (t(2, 0) + s90 + secs(30), 2),
        ]
    );
}

#[tokio::test]
async fn a_trigger_runs_now_and_moves_the_schedule() {
    let s = schedules(&[("audience:a", "0 * * * *")]);
    let clock = VirtualClock::new(t(5, 0));
    let r = recorder(&clock, Some(t(5, 0)), vec![]);
    let (tx, rx) = mpsc::channel(4);
    tx.send(Trigger::Manual("api".into())).await.unwrap();
    drop(tx);
    // Without an end time the loop stops when the trigger channel closes.
    run_schedule(&s, &clock, &r, &RetryPolicy::default(), rx, None).await;
    let runs = r.runs.lock().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].1, Trigger::Manual("api".into()));
}

#[test]
fn defaults_and_overrides() {
    assert!(parse_cron("not a cron").is_err());
    assert!(parse_cron("@hourly").is_ok());
    assert!(parse_cron("30 0 * * * *").is_ok(), "seconds first");
    let p = RetryPolicy::default();
    assert_eq!(p.backoff(2), Duration::from_secs(30));
    assert_eq!(p.backoff(4), Duration::from_secs(120));
    assert_eq!(p.backoff(30), Duration::from_secs(900));
}
