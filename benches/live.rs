//! How soon a live trait shows a new event: the time from the collector's answer to the
//! Profile API answering the new value, under sustained load.
//!
//! Goal (issue 20): at 5,000 events/s sustained, p99 of that time at most 1 s (Hightouch
//! claims same-session audiences "typically in less than one second").
//!
//! It starts the real binary over the starter space (`cohort init`, with `--events` generated
//! events instead of its 100,000 when given, and a write key), runs it once, then
//! `cohort serve`s it. Eight keep-alive clients post `/v1/batch` with `--batch` `Order
//! Completed` events of known customers at `--rate` events/s in open loop for `--secs`, and a
//! ninth, every 100 ms, sends one order with a fresh currency for a customer of its own and
//! polls `GET .../profiles/user_id:<u>/traits?include=last_order_currency` (every 5 ms) until
//! the API answers that currency: one sample. The live engine re-evaluates every trait and
//! audience of each touched profile from its whole history.
//!
//! Prints `key=value` lines. `cargo bench --bench live -- --rate 5000 --secs 30`

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "wk-live-bench";

struct Args {
    rate: u64,
    secs: u64,
    clients: usize,
    batch: usize,
    events: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        rate: 5_000,
        secs: 30,
        clients: 8,
        batch: 50,
        events: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let v = || argv.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match argv[i].as_str() {
            "--rate" => a.rate = v().expect("--rate N"),
            "--secs" => a.secs = v().expect("--secs N"),
            "--clients" => a.clients = v().expect("--clients N") as usize,
            "--batch" => a.batch = v().expect("--batch N") as usize,
            "--events" => a.events = Some(v().expect("--events N")),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn cohort(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cohort"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("cohort");
    assert!(
        out.status.success(),
        "cohort {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where `cohort serve` writes its log: the file `COHORT_BENCH_SERVE_LOG` names (with
/// `COHORT_LOG=cohort::live=debug`, each tick's timings), or nowhere.
fn serve_log() -> Stdio {
    match std::env::var("COHORT_BENCH_SERVE_LOG") {
        Ok(path) => std::fs::File::create(path).expect("the serve log").into(),
        Err(_) => Stdio::null(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn auth(user: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:"))
    )
}

fn order(user: &str, currency: &str, id: &str) -> String {
    format!(
        "{{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"{user}\",\
         \"messageId\":\"{id}\",\"properties\":{{\"revenue\":42.5,\"currency\":\"{currency}\",\
         \"order_id\":\"{id}\"}},\"context\":{{\"library\":{{\"name\":\"analytics.js\"}}}}}}"
    )
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> bool {
    client
        .post(url)
        .header("authorization", auth(KEY))
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let r = client
        .get(url)
        .header("authorization", auth("t"))
        .send()
        .await
        .ok()?;
    serde_json::from_str(&r.text().await.ok()?).ok()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Customers of the published run (user ids of profiles), in a stable order.
async fn customers(root: &Path) -> Vec<String> {
    let v = cohort::analyze::validate_space(&root.join("bench")).await;
    let space = v.space.expect("the bench space is valid");
    let ctx = cohort::read::query_session(&space, chrono::Utc::now())
        .await
        .unwrap();
    let mut out = Vec::new();
    let sql = "SELECT user_id FROM profiles WHERE user_id IS NOT NULL ORDER BY user_id";
    for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        let c = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let c = c
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .unwrap()
            .clone();
        out.extend(c.iter().flatten().map(String::from));
    }
    out
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    cohort(root, &["init", "bench"]);
    let yaml = std::fs::read_to_string(root.join("bench/space.yaml")).unwrap();
    std::fs::write(
        root.join("bench/space.yaml"),
        yaml.replacen(
            "url: ./data/events",
            &format!("url: ./data/events\n    write_keys: [{KEY}]"),
            1,
        ),
    )
    .unwrap();
    if let Some(n) = a.events {
        std::fs::remove_dir_all(root.join("bench/data/events")).unwrap();
        let n = n.to_string();
        cohort(
            root,
            &["generate", "--events", &n, "--out", "bench/data/events"],
        );
    }
    let t = Instant::now();
    cohort(root, &["run", "bench"]);
    println!("full_run_s={:.1}", t.elapsed().as_secs_f64());
    let users = rt.block_on(customers(root));
    assert!(users.len() > 20, "the bench space has customers");
    let (api, port) = (free_port(), free_port());
    let started = Instant::now();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_cohort"))
            .current_dir(root)
            .args(["serve", "bench", "--no-schedule", "--token", "store=t"])
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--sql-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--collect-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(serve_log())
            .spawn()
            .expect("cohort serve"),
    );
    let status_url = format!("http://127.0.0.1:{api}/v1/spaces/store/live");
    rt.block_on(async {
        let c = reqwest::Client::new();
        loop {
            if let Some(v) = get_json(&c, &status_url).await
                && v["live"]["run_id"].is_string()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "live not loaded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    println!("live_load_s={:.1}", started.elapsed().as_secs_f64());
    println!(
        "profiles={} rate={} secs={} clients={} batch={}",
        users.len(),
        a.rate,
        a.secs,
        a.clients,
        a.batch
    );
    // The sampler's customers are not in the load.
    let (sampled, loaded) = users.split_at(10);
    let (sampled, loaded) = (sampled.to_vec(), loaded.to_vec());
    let url = format!("http://127.0.0.1:{port}/v1/batch");
    let (acked, failed, samples, status) = rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(a.secs);
        let mut tasks = Vec::new();
        let every = Duration::from_secs_f64(a.clients as f64 * a.batch as f64 / a.rate as f64);
        for c in 0..a.clients {
            let (url, users, batch) = (url.clone(), loaded.clone(), a.batch);
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let start = Instant::now() + every.mul_f64(c as f64 / 8.0);
                let (mut acked, mut failed) = (0u64, 0u64);
                for b in 0u64.. {
                    tokio::time::sleep_until((start + every * b as u32).into()).await;
                    if Instant::now() >= until {
                        break;
                    }
                    let events: Vec<String> = (0..batch)
                        .map(|i| {
                            let n = (b as usize * batch + i) * 31 + c * 7;
                            order(&users[n % users.len()], "USD", &format!("l{c}-{b}-{i}"))
                        })
                        .collect();
                    let body = format!("{{\"batch\":[{}]}}", events.join(","));
                    if post(&client, &url, body).await {
                        acked += batch as u64;
                    } else {
                        failed += 1;
                    }
                }
                (acked, failed)
            }));
        }
        // The sampler.
        let client = reqwest::Client::new();
        let mut samples = Vec::new();
        let mut n = 0usize;
        tokio::time::sleep(Duration::from_secs(1)).await;
        while Instant::now() + Duration::from_secs(2) < until {
            let user = &sampled[n % sampled.len()];
            let currency = format!("S{n}");
            let body = format!("{{\"batch\":[{}]}}", order(user, &currency, &format!("s-{n}")));
            n += 1;
            if !post(&client, &url, body).await {
                continue;
            }
            let answered = Instant::now();
            let traits = format!(
                "http://127.0.0.1:{api}/v1/spaces/store/collections/users/profiles/user_id:{user}/traits?include=last_order_currency"
            );
            loop {
                if let Some(v) = get_json(&client, &traits).await
                    && v["traits"]["last_order_currency"] == currency.as_str()
                {
                    samples.push(answered.elapsed());
                    break;
                }
                if answered.elapsed() > Duration::from_secs(30) {
                    eprintln!(
                        "sample {currency} of {user} not seen in 30 s: {:?}",
                        get_json(&client, &traits).await
                    );
                    samples.push(answered.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut acked, mut failed) = (0, 0);
        for t in tasks {
            let (x, f) = t.await.unwrap();
            acked += x;
            failed += f;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = get_json(&client, &status_url).await.unwrap_or_default();
        (acked, failed, samples, status)
    });
    let mut s = samples;
    s.sort();
    println!(
        "load_events_per_s={:.0} failed_batches={failed}",
        acked as f64 / a.secs as f64
    );
    println!(
        "live_samples={} live_p50_ms={:.1} live_p99_ms={:.1} live_max_ms={:.1}",
        s.len(),
        percentile(&s, 0.5),
        percentile(&s, 0.99),
        percentile(&s, 1.0)
    );
    println!(
        "live_p99_vs_goal_1s={:.2}x live_events_applied={} live_ticks={} last_tick_events={} \
         last_tick_ms={} live_error={}",
        percentile(&s, 0.99) / 1000.0,
        status["live"]["events"],
        status["live"]["ticks"],
        status["live"]["last_tick_events"],
        status["live"]["last_tick_ms"],
        status["live"]["error"]
    );
}
