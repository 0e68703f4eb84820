//! How many events a second the collector takes, how fast it answers, and whether `kill -9`
//! under load loses or repeats an acknowledged event.
//!
//! Goals (issue 20): at least 20,000 events/s sustained from 8 clients sending batches of
//! 100, p99 time to answer at most 50 ms; 20 `kill -9` of `cohort serve` under load, every
//! event answered 200 in the lake after restart, none twice.
//!
//! It starts the real binary (`cohort serve`, built with the bench) over a space with a write
//! key in a temp folder, with its default flush thresholds, and drives it from this process
//! on loopback with 8 keep-alive HTTP/1.1 clients posting `/v1/batch` with 100 track events
//! (~330 bytes each: properties and a context, as analytics.js sends):
//! - `rate`: open loop at `--rate` events/s (each client on its own schedule) for `--secs`;
//!   latency is measured from the scheduled send, so a stall counts in full;
//! - `max`: closed loop (each client sends its next batch when answered) for `--secs`;
//! - `kills`: `--kills` rounds of load, each ended by `kill -9` after 0.5–2 s, then one
//!   clean start and stop; every Parquet file in the lake is read back and checked.
//!
//! Prints `key=value` lines. `cargo bench --bench collector -- --secs 20 --kills 20`

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "wk-bench";

struct Args {
    rate: u64,
    secs: u64,
    clients: usize,
    batch: usize,
    kills: usize,
}

fn args() -> Args {
    let mut a = Args {
        rate: 20_000,
        secs: 20,
        clients: 8,
        batch: 100,
        kills: 20,
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
            "--kills" => a.kills = v().expect("--kills N") as usize,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn write_space(root: &Path) {
    std::fs::create_dir_all(root.join("bench")).unwrap();
    std::fs::write(
        root.join("bench/space.yaml"),
        format!(
            "name: bench\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    \
             url: ./data/events\n    write_keys: [{KEY}]\noutput: ./out\n"
        ),
    )
    .unwrap();
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

fn start(root: &Path, port: u16) -> Server {
    Server(
        Command::new(env!("CARGO_BIN_EXE_cohort"))
            .current_dir(root)
            .args(["serve", "bench", "--no-schedule", "--token", "bench=t"])
            .args(["--api-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--sql-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--collect-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cohort serve"),
    )
}

async fn wait_up(port: u16) {
    let c = reqwest::Client::new();
    let start = Instant::now();
    while c
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "collector not up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A batch body of `n` events with ids `<tag>-<i>`.
fn body(tag: &str, n: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(n * 360);
    s.push_str("{\"batch\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"type\":\"track\",\"event\":\"Product Viewed\",\"userId\":\"user-{u}\",\
             \"messageId\":\"{tag}-{i}\",\"timestamp\":\"2026-12-05T10:00:00.000Z\",\
             \"properties\":{{\"product_id\":\"sku-{i}\",\"price\":19.99,\"category\":\"Shoes\"}},\
             \"context\":{{\"library\":{{\"name\":\"analytics.js\",\"version\":\"next-1.84.3\"}},\
             \"page\":{{\"path\":\"/p/{i}\",\"url\":\"https://shop.example/p/{i}\"}},\"ip\":\"10.0.0.1\"}}}}",
            u = i % 17
        );
    }
    s.push_str("],\"sentAt\":\"2026-12-05T10:00:00.100Z\"}");
    s
}

fn auth() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
    )
}

/// Sends one batch; the time to answer, or None when it was not a 200.
async fn send(client: &reqwest::Client, url: &str, body: String) -> Option<Duration> {
    let t = Instant::now();
    let r = client
        .post(url)
        .header("authorization", auth())
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    (r.status() == 200).then(|| t.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Load for `secs`: open loop at `rate` events/s, or closed loop when `rate` is None.
async fn load(port: u16, a: &Args, rate: Option<u64>, tag: &str) -> (u64, Vec<Duration>, u64) {
    let url = format!("http://127.0.0.1:{port}/v1/batch");
    let until = Instant::now() + Duration::from_secs(a.secs);
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let url = url.clone();
        let (batch, tag) = (a.batch, format!("{tag}-c{c}"));
        // Each client's batches per second, its sends spread over the second.
        let every =
            rate.map(|r| Duration::from_secs_f64(a.clients as f64 * a.batch as f64 / r as f64));
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut lat, mut errors, mut events) = (Vec::new(), 0u64, 0u64);
            let start =
                Instant::now() + every.map_or(Duration::ZERO, |e| e.mul_f64(c as f64 / 8.0));
            for b in 0u64.. {
                let due = every.map(|e| start + e * b as u32);
                if let Some(d) = due {
                    tokio::time::sleep_until(d.into()).await;
                }
                if Instant::now() >= until {
                    break;
                }
                let sent = due.unwrap_or_else(Instant::now);
                match send(&client, &url, body(&format!("{tag}-b{b}"), batch)).await {
                    Some(_) => {
                        lat.push(sent.elapsed());
                        events += batch as u64;
                    }
                    None => errors += 1,
                }
            }
            (events, lat, errors)
        }));
    }
    let (mut events, mut lat, mut errors) = (0, Vec::new(), 0);
    for t in tasks {
        let (e, l, x) = t.await.unwrap();
        events += e;
        lat.extend(l);
        errors += x;
    }
    lat.sort();
    (events, lat, errors)
}

/// One client of the kill rounds: fresh ids until the server is gone; the acknowledged ids.
async fn until_gone(port: u16, tag: String, batch: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/batch");
    let mut acked = Vec::new();
    for b in 0.. {
        let t = format!("{tag}-b{b}");
        if send(&client, &url, body(&t, batch)).await.is_none() {
            return acked;
        }
        acked.extend((0..batch).map(|i| format!("{t}-{i}")));
    }
    acked
}

/// Every message id in the lake's Parquet files, with how often it is there.
fn lake_ids(root: &Path) -> HashMap<String, u32> {
    let mut ids = HashMap::new();
    let dir = root.join("bench/data/events");
    for day in std::fs::read_dir(&dir).into_iter().flatten() {
        for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            if f.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue; // a killed flush's unfinished file, which runs never read
            }
            let file = std::fs::File::open(&f).unwrap();
            let b =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    file,
                )
                .unwrap();
            let mask = datafusion::parquet::arrow::ProjectionMask::columns(
                b.parquet_schema(),
                ["message_id"],
            );
            for batch in b.with_projection(mask).build().unwrap() {
                let batch = batch.unwrap();
                let col = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .unwrap()
                    .clone();
                for v in col.iter().flatten() {
                    *ids.entry(v.to_string()).or_default() += 1;
                }
            }
        }
    }
    ids
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "machine cores={} clients={} batch={} secs={}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        a.clients,
        a.batch,
        a.secs
    );
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let port = free_port();
    let server = start(tmp.path(), port);
    rt.block_on(wait_up(port));
    rt.block_on(load(port, &Args { secs: 2, ..a }, None, "warm"));

    let (events, lat, errors) = rt.block_on(load(port, &a, Some(a.rate), "rate"));
    let eps = events as f64 / a.secs as f64;
    println!(
        "rate target_events_per_s={} events_per_s={eps:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} requests={} errors={errors}",
        a.rate,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        lat.len()
    );
    println!(
        "goal rate: >= 20000 events/s with p99 <= 50 ms: {}",
        if eps >= 20_000.0 * 0.99 && percentile(&lat, 0.99) <= 50.0 && errors == 0 {
            "met"
        } else {
            "not met"
        }
    );
    let (events, lat, errors) = rt.block_on(load(port, &a, None, "max"));
    println!(
        "max events_per_s={:.0} p50_ms={:.2} p99_ms={:.2} requests={} errors={errors}",
        events as f64 / a.secs as f64,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
    drop(server);

    // Durability: a fresh lake, kill -9 under load, then one clean start and stop.
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let mut acked: Vec<String> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..a.kills {
        let port = free_port();
        let mut server = start(tmp.path(), port);
        rt.block_on(wait_up(port));
        let clients: Vec<_> = (0..a.clients)
            .map(|c| rt.spawn(until_gone(port, format!("k{round}-c{c}"), a.batch)))
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(500 + seed % 1500));
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        for c in clients {
            acked.extend(rt.block_on(c).unwrap());
        }
    }
    let port = free_port();
    let server = start(tmp.path(), port);
    rt.block_on(wait_up(port));
    let t = Instant::now();
    // SAFETY: signalling the child this program started.
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let mut server = server;
    server.0.wait().unwrap();
    let stop_s = t.elapsed().as_secs_f64();
    let ids = lake_ids(tmp.path());
    let missing = acked.iter().filter(|id| !ids.contains_key(*id)).count();
    let twice = ids.values().filter(|n| **n > 1).count();
    let in_lake: u64 = ids.values().map(|n| *n as u64).sum();
    println!(
        "kills rounds={} acknowledged={} in_lake={in_lake} missing={missing} twice={twice} final_stop_s={stop_s:.1}",
        a.kills,
        acked.len()
    );
    println!(
        "goal kills: every acknowledged event in the lake, none twice: {}",
        if missing == 0 && twice == 0 && a.kills >= 20 {
            "met"
        } else if missing == 0 && twice == 0 {
            "met for the rounds run"
        } else {
            "not met"
        }
    );
}
