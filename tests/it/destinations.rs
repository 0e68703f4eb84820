//! Webhook destinations end to end, against a real HTTP receiver on 127.0.0.1 that records
//! every request and can be told to fail, stall, refuse some messages, rate-limit or hang:
//! first syncs, changes, retries, dead letters, the rate limit, a restart mid-delivery and the
//! validate errors of destination files.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cohort::serve::destinations::{SyncOptions, SyncReport, sync};
use datafusion::arrow::array::{Array, AsArray};
use serde_json::{Value, json};

use crate::common::{EVENT_COLUMNS, cohort_bin, load, write_space, write_text_parquet};

/// What the receiver does with the next request.
#[derive(Clone, Debug)]
enum Behave {
    Fail500,
    /// Answer 200 only after this long (past the client's timeout).
    Stall(Duration),
    /// 429 with `Retry-After: <seconds>`.
    TooMany(u64),
    /// Never answer in the test's lifetime.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    at: Instant,
    /// The status answered; 0 for a stalled or hung request.
    status: u16,
    auth: Option<String>,
    pub(crate) batch: Vec<Value>,
}

#[derive(Default)]
pub(crate) struct Recv {
    script: VecDeque<Behave>,
    /// Messages whose userId is here get a 400 (and so does any batch holding one).
    poison: HashSet<String>,
    /// Answer 500 to everything.
    down: bool,
    /// The request (1-based) that hangs instead of being answered.
    hang_at: Option<usize>,
    requests: Vec<Req>,
}

pub(crate) type Shared = Arc<Mutex<Recv>>;

async fn hook(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).expect("a JSON body");
    let batch = v["batch"].as_array().expect("a batch").clone();
    let auth = headers
        .get("authorization")
        .map(|h| h.to_str().unwrap().to_string());
    let (behave, status) = {
        let mut r = s.lock().unwrap();
        let behave = if r.hang_at == Some(r.requests.len() + 1) {
            Some(Behave::Hang)
        } else {
            r.script.pop_front()
        };
        let poisoned = batch
            .iter()
            .any(|m| m["userId"].as_str().is_some_and(|u| r.poison.contains(u)));
        let status = match &behave {
            Some(Behave::Fail500) => 500,
            Some(Behave::TooMany(_)) => 429,
            Some(Behave::Stall(_) | Behave::Hang) => 0,
            None if r.down => 500,
            None if poisoned => 400,
            None => 200,
        };
        r.requests.push(Req {
            at: Instant::now(),
            status,
            auth,
            batch,
        });
        (behave, status)
    };
    match behave {
        Some(Behave::Stall(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Some(Behave::Hang) => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::OK.into_response()
        }
        Some(Behave::TooMany(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        _ => (StatusCode::from_u16(status).unwrap(), "ok").into_response(),
    }
}

/// Starts a receiver on 127.0.0.1:0; returns its URL and its state.
pub(crate) async fn receiver() -> (String, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/batch", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/batch", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

pub(crate) fn requests(s: &Shared) -> Vec<Req> {
    s.lock().unwrap().requests.clone()
}

/// Message ids of the requests answered 200, in order.
fn delivered_ids(s: &Shared) -> Vec<String> {
    requests(s)
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| {
            r.batch
                .iter()
                .map(|m| m["messageId"].as_str().unwrap().to_string())
        })
        .collect()
}

fn some(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

/// Writes one day of events: `(message_id, type, event, user_id, anonymous_id, timestamp,
/// traits)`.
fn write_day(dir: &Path, day: &str, rows: &[[&str; 7]]) {
    let rows: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|r| {
            vec![
                some(r[0]),
                some(r[1]),
                some(r[2]),
                some(r[3]),
                some(r[4]),
                None,
                None,
                some(r[5]),
                None,
                some(r[6]),
                None,
            ]
        })
        .collect();
    write_text_parquet(
        &dir.join(format!("data/events/dt={day}/part-0.parquet")),
        &EVENT_COLUMNS,
        &rows,
    );
}

/// A space `hooks` with audience `buyers` (an order in the last 7 days) sent to destination
/// `hook`, whose file body is `dest` (the url is added).
fn hook_space(dir: &Path, url: &str, dest: &str) {
    write_space(dir, "hooks", &[("web", "events", "./data/events")], "./out");
    std::fs::create_dir_all(dir.join("audiences")).unwrap();
    std::fs::create_dir_all(dir.join("destinations")).unwrap();
    std::fs::write(
        dir.join("audiences/buyers.yaml"),
        "query: \"event('Order Completed').within(7 days).count() >= 1\"\ndestinations: [hook]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("destinations/hook.yaml"),
        format!("type: webhook\nurl: {url}\n{dest}"),
    )
    .unwrap();
}

async fn run(dir: &Path, as_of: &str) {
    let space = load(dir).await;
    let opts = cohort::run::RunOptions {
        as_of: Some(cohort::cli::parse_time(as_of).unwrap()),
        ..Default::default()
    };
    cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();
}

async fn sync_now(dir: &Path) -> SyncReport {
    let space = load(dir).await;
    let report = sync(&space, &SyncOptions::default()).await.unwrap();
    for d in &report.destinations {
        assert!(d.error.is_none(), "{}: {:?}", d.name, d.error);
    }
    report
}

/// `n` buyers `u0..`, each with a user id and an anonymous id, ordering on 2026-10-09.
fn buyers(dir: &Path, n: usize) {
    let ids: Vec<(String, String, String)> = (0..n)
        .map(|i| (format!("m{i}"), format!("u{i}"), format!("a{i}")))
        .collect();
    let rows: Vec<[&str; 7]> = ids
        .iter()
        .map(|(m, u, a)| {
            [
                m.as_str(),
                "track",
                "Order Completed",
                u.as_str(),
                a.as_str(),
                "2026-10-09T12:00:00Z",
                "",
            ]
        })
        .collect();
    write_day(dir, "2026-10-09", &rows);
}

/// (type, userId, anonymousId, externalId type, value, traits or properties) of a message.
fn summary(m: &Value) -> String {
    let ext = &m["context"]["externalIds"][0];
    let body = if m["type"] == "identify" {
        m["traits"].to_string()
    } else {
        format!("{} {}", m["event"].as_str().unwrap(), m["properties"])
    };
    format!(
        "{} user={} anon={} {}={} {}",
        m["type"].as_str().unwrap(),
        m["userId"].as_str().unwrap_or("-"),
        m["anonymousId"].as_str().unwrap_or("-"),
        ext["type"].as_str().unwrap(),
        ext["id"].as_str().unwrap(),
        body
    )
}

fn delivered_summaries(s: &Shared) -> BTreeSet<String> {
    requests(s)
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| r.batch.iter().map(summary))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_sends_every_member_then_only_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (url, recv) = receiver().await;
    hook_space(
        dir,
        &url,
        "mode: [track, identify]\nbatch_size: 3\nheaders:\n  X-Team: growth\n",
    );
    // u1 (with an email and an anonymous id) and u2 buy on 10-09; u3 only signs in.
    write_day(
        dir,
        "2026-10-09",
        &[
            [
                "m0",
                "identify",
                "",
                "u1",
                "a1",
                "2026-10-09T10:00:00Z",
                r#"{"email":"u1@example.com"}"#,
            ],
            [
                "m1",
                "track",
                "Order Completed",
                "u1",
                "a1",
                "2026-10-09T12:00:00Z",
                "",
            ],
            [
                "m2",
                "track",
                "Order Completed",
                "u2",
                "",
                "2026-10-09T13:00:00Z",
                "",
            ],
            [
                "m3",
                "track",
                "Signed In",
                "u3",
                "a3",
                "2026-10-09T14:00:00Z",
                "",
            ],
        ],
    );
    run(dir, "2026-10-10T00:00:00Z").await;
    let report = sync_now(dir).await;
    let d = &report.destinations[0];
    assert_eq!((d.name.as_str(), d.planned, d.delivered), ("hook", 8, 8));
    assert_eq!(d.audiences, ["buyers"]);

    let reqs = requests(&recv);
    // 8 messages in batches of at most 3.
    assert_eq!(
        reqs.iter().map(|r| r.batch.len()).collect::<Vec<_>>(),
        [3, 3, 2]
    );
    assert!(reqs.iter().all(|r| r.status == 200));
    let expected: BTreeSet<String> = [
        r#"identify user=u1 anon=- email=u1@example.com {"buyers":true,"email":"u1@example.com"}"#,
        r#"identify user=u1 anon=- user_id=u1 {"buyers":true}"#,
        r#"identify user=u1 anon=a1 anonymous_id=a1 {"buyers":true}"#,
        r#"identify user=u2 anon=- user_id=u2 {"buyers":true}"#,
        r#"track user=u1 anon=- email=u1@example.com Audience Entered {"audience_key":"buyers","buyers":true}"#,
        r#"track user=u1 anon=- user_id=u1 Audience Entered {"audience_key":"buyers","buyers":true}"#,
        r#"track user=u1 anon=a1 anonymous_id=a1 Audience Entered {"audience_key":"buyers","buyers":true}"#,
        r#"track user=u2 anon=- user_id=u2 Audience Entered {"audience_key":"buyers","buyers":true}"#,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(delivered_summaries(&recv), expected);

    // One message in full: Segment's shape.
    let all: Vec<Value> = reqs.iter().flat_map(|r| r.batch.clone()).collect();
    let track_email = all
        .iter()
        .find(|m| m["type"] == "track" && m["context"]["externalIds"][0]["type"] == "email")
        .unwrap();
    let mut m = track_email.clone();
    let id = m["messageId"].as_str().unwrap().to_string();
    assert!(id.starts_with("cohort-") && id.len() == 39, "{id}");
    m["messageId"] = json!("<id>");
    m["context"]["library"]["version"] = json!("<v>");
    let computation_id = cohort::serve::destinations::computation_id("hooks", "buyers");
    assert_eq!(
        m,
        json!({
            "type": "track",
            "event": "Audience Entered",
            "userId": "u1",
            "messageId": "<id>",
            "timestamp": "2026-10-10T00:00:00.000Z",
            "properties": { "audience_key": "buyers", "buyers": true },
            "context": {
                "personas": {
                    "computation_class": "audience",
                    "computation_id": computation_id,
                    "computation_key": "buyers",
                    "namespace": "hooks",
                    "space_id": "hooks",
                },
                "externalIds": [{
                    "id": "u1@example.com", "type": "email",
                    "collection": "users", "encoding": "none",
                }],
                "traits": { "email": "u1@example.com" },
                "library": { "name": "cohort", "version": "<v>" },
            },
        })
    );
    // Every messageId is distinct.
    let ids: HashSet<&str> = all
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 8);

    // Nothing new published: nothing sent.
    let again = sync_now(dir).await;
    assert_eq!(
        (
            again.destinations[0].planned,
            again.destinations[0].requests
        ),
        (0, 0)
    );
    assert_eq!(requests(&recv).len(), 3);

    // Run 2 as of 10-17: u2's order is 8 days old (exits), u3 buys (enters), u1 buys again
    // (stays in: nothing sent for u1).
    write_day(
        dir,
        "2026-10-14",
        &[
            [
                "m4",
                "track",
                "Order Completed",
                "u3",
                "a3",
                "2026-10-14T12:00:00Z",
                "",
            ],
            [
                "m5",
                "track",
                "Order Completed",
                "u1",
                "",
                "2026-10-14T13:00:00Z",
                "",
            ],
        ],
    );
    run(dir, "2026-10-17T00:00:00Z").await;
    recv.lock().unwrap().requests.clear();
    let report = sync_now(dir).await;
    assert_eq!(report.destinations[0].planned, 6);
    let expected: BTreeSet<String> = [
        r#"identify user=u2 anon=- user_id=u2 {"buyers":false}"#,
        r#"identify user=u3 anon=- user_id=u3 {"buyers":true}"#,
        r#"identify user=u3 anon=a3 anonymous_id=a3 {"buyers":true}"#,
        r#"track user=u2 anon=- user_id=u2 Audience Exited {"audience_key":"buyers","buyers":false}"#,
        r#"track user=u3 anon=- user_id=u3 Audience Entered {"audience_key":"buyers","buyers":true}"#,
        r#"track user=u3 anon=a3 anonymous_id=a3 Audience Entered {"audience_key":"buyers","buyers":true}"#,
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(delivered_summaries(&recv), expected);
    let exit = requests(&recv)
        .iter()
        .flat_map(|r| r.batch.clone())
        .find(|m| m["event"] == "Audience Exited")
        .unwrap();
    assert_eq!(exit["timestamp"], "2026-10-17T00:00:00.000Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_500_timeout_and_429_then_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (url, recv) = receiver().await;
    hook_space(
        dir,
        &url,
        "batch_size: 4\ntimeout: 300ms\nbackoff: 50ms\nmax_attempts: 4\nrate_limit: 100\n",
    );
    buyers(dir, 4); // 8 identify messages: 2 batches
    run(dir, "2026-10-10T00:00:00Z").await;
    recv.lock().unwrap().script = VecDeque::from([
        Behave::Fail500,
        Behave::Stall(Duration::from_secs(2)),
        Behave::TooMany(1),
    ]);
    let report = sync_now(dir).await;
    let d = &report.destinations[0];
    assert_eq!(
        (
            d.planned,
            d.delivered,
            d.dead_lettered,
            d.requests,
            d.retries
        ),
        (8, 8, 0, 5, 3)
    );
    let reqs = requests(&recv);
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 0, 429, 200, 200]
    );
    // The first four tries carry the same batch, with the same messageIds.
    let ids = |r: &Req| {
        r.batch
            .iter()
            .map(|m| m["messageId"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!((1..4).all(|i| ids(&reqs[i]) == ids(&reqs[0])));
    // Backoff: 50 ms after the 500; the timed-out try waits for its 300 ms timeout and then
    // 100 ms; Retry-After: 1 beats the 200 ms backoff.
    let gap = |i: usize| reqs[i].at - reqs[i - 1].at;
    assert!(gap(1) >= Duration::from_millis(45), "{:?}", gap(1));
    assert!(gap(2) >= Duration::from_millis(390), "{:?}", gap(2));
    assert!(gap(3) >= Duration::from_millis(990), "{:?}", gap(3));
    let delivered = delivered_ids(&recv);
    assert_eq!(delivered.len(), 8);
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_go_to_the_dead_letter_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (url, recv) = receiver().await;
    let (down_url, down) = receiver().await;
    down.lock().unwrap().down = true;
    hook_space(
        dir,
        &url,
        "batch_size: 3\nbackoff: 10ms\nidentifiers: [user_id]\n",
    );
    std::fs::write(
        dir.join("destinations/down.yaml"),
        format!("type: webhook\nurl: {down_url}\nmax_attempts: 2\nbackoff: 10ms\nbatch_size: 10\nidentifiers: [user_id]\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("audiences/buyers.yaml"),
        "query: \"event('Order Completed').within(7 days).count() >= 1\"\n\
         destinations: [hook, down]\n",
    )
    .unwrap();
    buyers(dir, 5); // u0..u4, user_id only: 5 messages per destination
    run(dir, "2026-10-10T00:00:00Z").await;
    recv.lock().unwrap().poison = HashSet::from(["u1".to_string()]);

    let report = sync_now(dir).await;
    let by_name: BTreeMap<&str, _> = report
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d))
        .collect();
    let (hook, dn) = (by_name["hook"], by_name["down"]);
    assert_eq!((hook.delivered, hook.dead_lettered), (4, 1));
    assert_eq!((dn.delivered, dn.dead_lettered, dn.requests), (0, 5, 2));
    // The batch holding u1 was refused, then sent one by one: only u1 failed.
    let users: BTreeSet<String> = requests(&recv)
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| {
            r.batch
                .iter()
                .map(|m| m["userId"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        users,
        BTreeSet::from(["u0", "u2", "u3", "u4"].map(String::from))
    );

    // The dead-letter table.
    let space = load(dir).await;
    let loc = cohort::run::output_location(&space)
        .unwrap()
        .child("destination_dead_letters");
    let table = cohort::store::delta::open(&loc).await.unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_table("dl", table.table_provider().await.unwrap())
        .unwrap();
    let batches = ctx
        .sql(
            "SELECT destination, audience_key, id_value, change, type, attempts, http_status, \
             error, message_id, payload FROM dl ORDER BY destination, id_value",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
                    .unwrap()
            })
            .collect();
        for i in 0..b.num_rows() {
            let cell = |c: usize| cols[c].as_string::<i32>().value(i).to_string();
            let payload: Value = serde_json::from_str(&cell(9)).unwrap();
            assert_eq!(payload["messageId"].as_str().unwrap(), cell(8));
            assert!(!cols[6].is_null(i));
            rows.push((0..8).map(cell).collect::<Vec<_>>().join(" "));
        }
    }
    assert_eq!(
        rows,
        [
            "down buyers u0 entered identify 2 500 HTTP 500 Internal Server Error: ok",
            "down buyers u1 entered identify 2 500 HTTP 500 Internal Server Error: ok",
            "down buyers u2 entered identify 2 500 HTTP 500 Internal Server Error: ok",
            "down buyers u3 entered identify 2 500 HTTP 500 Internal Server Error: ok",
            "down buyers u4 entered identify 2 500 HTTP 500 Internal Server Error: ok",
            "hook buyers u1 entered identify 1 400 HTTP 400 Bad Request: ok",
        ]
    );
    // Dead letters are not retried by the next sync.
    let again = sync_now(dir).await;
    assert!(again.destinations.iter().all(|d| d.requests == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_spaces_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (url, recv) = receiver().await;
    hook_space(
        dir,
        &url,
        "batch_size: 1\nrate_limit: 10\nidentifiers: [user_id]\n",
    );
    buyers(dir, 6);
    run(dir, "2026-10-10T00:00:00Z").await;
    let started = Instant::now();
    let report = sync_now(dir).await;
    assert_eq!(report.destinations[0].requests, 6);
    let reqs = requests(&recv);
    let gaps: Vec<Duration> = reqs.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert_eq!(gaps.len(), 5);
    // 10 requests a second: at least ~100 ms apart (a little scheduling slack).
    for g in &gaps {
        assert!(*g >= Duration::from_millis(90), "{gaps:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_delivery_resends_only_the_batch_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (url, recv) = receiver().await;
    hook_space(
        dir,
        &url,
        "batch_size: 4\ntimeout: 60s\nheaders:\n  Authorization: \"Bearer ${COHORT_TEST_HOOK_TOKEN}\"\n",
    );
    buyers(dir, 20); // 40 identify messages: 10 batches
    run(dir, "2026-10-10T00:00:00Z").await;
    // Three batches go through, the fourth hangs: the process is killed while it waits.
    recv.lock().unwrap().hang_at = Some(4);
    let sync_cmd = || {
        let mut c = std::process::Command::new(cohort_bin());
        c.arg("sync")
            .arg(dir)
            .env("COHORT_TEST_HOOK_TOKEN", "s3cret")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let mut child = sync_cmd().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while requests(&recv).len() < 4 {
        assert!(Instant::now() < deadline, "the sync never reached batch 4");
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "sync ended early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = requests(&recv);
    assert_eq!(
        before.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 200, 0]
    );
    let in_flight: BTreeSet<String> = before[3]
        .batch
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(in_flight.len(), 4);

    // A new sync delivers the rest, starting with the batch that was in flight.
    let out = sync_cmd().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("hook: 1 audience(s), 0 planned, 28 delivered, 0 dead-lettered, 7 request(s), 0 retried, 1 interrupted outbox(es) resumed"),
        "{stdout}"
    );
    let all = requests(&recv);
    assert!(
        all.iter()
            .all(|r| r.auth.as_deref() == Some("Bearer s3cret"))
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &all {
        for m in &r.batch {
            *seen
                .entry(m["messageId"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    // Every message arrived; only the in-flight batch twice.
    assert_eq!(seen.len(), 40);
    let twice: BTreeSet<String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(twice, in_flight);
    assert!(seen.values().all(|n| *n <= 2));
    let delivered: HashSet<String> = delivered_ids(&recv).into_iter().collect();
    assert_eq!(delivered.len(), 40);
    assert_eq!(all[4].batch, before[3].batch);
}

#[tokio::test]
async fn validate_points_at_unknown_destinations_and_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hook_space(
        dir,
        "https://hooks.example.com/${HOOK_PATH}",
        "batchsize: 10\nidentifiers: [user_id, emial]\n",
    );
    std::fs::write(
        dir.join("audiences/buyers.yaml"),
        "query: \"event('Order Completed').count() >= 1\"\ndestinations: [hook, hok]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("destinations/broken.yaml"),
        "type: webhook\nurl: [oops\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("destinations/ftp.yaml"),
        "type: ftp\nurl: ftp://x\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data/events")).unwrap();
    let v = cohort::analyze::validate_space(dir).await;
    let got: Vec<String> = v.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        got,
        [
            "error: audiences/buyers.yaml:2:22: unknown destination `hok`",
            "error: destinations/broken.yaml:3:1: YAML syntax error: while parsing a flow sequence, expected ',' or ']'",
            "error: destinations/ftp.yaml:1:7: unknown destination type `ftp`",
            "error: destinations/ftp.yaml:2:6: `url`: `ftp://x` is not an http:// or https:// URL",
            "error: destinations/hook.yaml:3:1: unknown key `batchsize` in a destination",
            "error: destinations/hook.yaml:4:24: unknown identifier type `emial`",
        ],
        "{}",
        cohort::spec::render_all(&v.diagnostics, dir)
    );
    let help = |i: usize| v.diagnostics[i].help.clone().unwrap_or_default();
    assert_eq!(help(0), "did you mean `hook`?");
    assert_eq!(help(4), "did you mean `batch_size`?");
    assert_eq!(help(5), "did you mean `email`?");
}
