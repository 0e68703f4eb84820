//! How well `cohort serve` holds up while a SQL client misbehaves: issue 23's goals.
//!
//! Goals: a cross join left running by a killed client is cancelled within 1 s of the
//! disconnect; `statement_timeout = 3s` stops a query within 3.5 s; while one connection runs
//! a query that uses all its memory limit, the Profile API's p99 stays at most 10 ms and the
//! other space's `select count(*) from profiles` answers in at most 100 ms.
//!
//! It makes the demo space (`cohort demo --events N`, default the demo's 1 M) and a copy of it
//! named `other`, then starts the release binary as a user would: `cohort serve store other
//! --no-schedule --sql-max-queries 1 --sql-memory-limit 1GB --rate-limit 0`. A psycopg client (the bench
//! venv's Python, `bash .ci/venv`) then measures, in this order:
//!
//! * `api_idle_p50_ms` / `api_idle_p99_ms`: Profile API traits lookups of random users of
//!   `store`, one at a time for `--secs` seconds, with nothing else running (the baseline);
//! * `timeout_s`: `SET statement_timeout = '3s'`, then `select count(*) from events a cross
//!   join events b where a.message_id < b.message_id` (10¹² pairs), until the error;
//! * `cancel_after_kill_s`: psql runs the same cross join with no timeout and is killed after
//!   2 s; at once a new connection runs `select 1`. `store` has one place for running queries,
//!   so the answer comes only once the killed client's query has stopped: this is the time
//!   from the kill to that answer;
//! * `api_load_p50_ms` / `api_load_p99_ms` and `other_p50_ms` / `other_p95_ms` /
//!   `other_max_ms`: the same lookups for `--secs` seconds while another connection of
//!   `store` runs a grouping of 10⁸ distinct keys that fills its memory limit (and spills),
//!   and meanwhile every 250 ms a connection to `other` runs `select count(*) from profiles`.
//!   Before the heavy query starts, `other_first_idle_ms` is the other space's first query,
//!   alone: it registers the space's tables (reads each Delta log) and so is no measure of
//!   sharing the processor.
//!   `heavy_state` says what the heavy query was doing when the window ended (`running`, or
//!   its error code), and `server_peak_rss_mb` the server's peak memory.
//!
//! Prints `key=value` lines, then `ratio_api_p99=` (under load / idle).
//!
//! `cargo bench --bench sql_limits -- --events 1000000 --secs 10`

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

struct Args {
    events: u64,
    secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        events: 1_000_000,
        secs: 10,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let v = || argv.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match argv[i].as_str() {
            "--events" => a.events = v().expect("--events N"),
            "--secs" => a.secs = v().expect("--secs N"),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

/// Kills the server however the bench ends.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -r {} {}", from.display(), to.display());
}

fn main() {
    let a = args();
    let bin = env!("CARGO_BIN_EXE_cohort");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = std::time::Instant::now();
    let out = Command::new(bin)
        .current_dir(dir)
        .args(["demo", "--dir", "store", "--events", &a.events.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy_dir(&dir.join("store"), &dir.join("other"));
    // A space publishes under `<output>/<its name>/`.
    std::fs::rename(dir.join("other/out/store"), dir.join("other/out/other")).unwrap();
    let yaml = std::fs::read_to_string(dir.join("other/space.yaml")).unwrap();
    std::fs::write(
        dir.join("other/space.yaml"),
        yaml.replacen("name: store", "name: other", 1),
    )
    .unwrap();
    println!("demo_s={:.1}", t.elapsed().as_secs_f64());

    let (api, sql) = (free_port(), free_port());
    let server = Server(
        Command::new(bin)
            .current_dir(dir)
            .args(["serve", "store", "other", "--no-schedule"])
            .args(["--token", "store=tok-store", "--token", "other=tok-other"])
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--sql-addr", &format!("127.0.0.1:{sql}")])
            .args(["--sql-max-queries", "1", "--sql-memory-limit", "1GB"])
            // The lookups are timed, not throttled.
            .args(["--rate-limit", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = Command::new(common::python())
        .args(["-c", CLIENTS])
        .args([
            sql.to_string(),
            api.to_string(),
            a.secs.to_string(),
            server.0.id().to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    print!("{text}");
}

const CLIENTS: &str = r#"
import base64, http.client, random, subprocess, sys, threading, time
import psycopg
sql_port, api_port, secs, server_pid = (int(x) for x in sys.argv[1:5])
def connect(db="store"):
    deadline = time.time() + 120
    while True:
        try:
            return psycopg.connect(host="127.0.0.1", port=sql_port, dbname=db, user="bench",
                                   password="tok-" + db, autocommit=True)
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]
def show(key, value):
    print(f"{key}={value}", flush=True)

c = connect()
ids = [r[0] for r in c.execute(
    "select id_value from identities where id_type = 'user_id' limit 2000").fetchall()]
auth = "Basic " + base64.b64encode(b"tok-store:").decode()
def lookups(seconds):
    conn = http.client.HTTPConnection("127.0.0.1", api_port)
    times, end = [], time.time() + seconds
    while time.time() < end:
        uid = random.choice(ids)
        start = time.perf_counter()
        conn.request("GET", f"/v1/spaces/store/collections/users/profiles/user_id:{uid}/traits",
                     headers={"Authorization": auth})
        r = conn.getresponse()
        r.read()
        times.append((time.perf_counter() - start) * 1000)
        assert r.status == 200, r.status
    return times

idle = lookups(secs)
show("api_idle_requests", len(idle))
show("api_idle_p50_ms", round(pct(idle, 0.5), 2))
show("api_idle_p99_ms", round(pct(idle, 0.99), 2))

# A plain count(*) of a cross join is answered from the tables' statistics: compare the rows.
CROSS = "select count(*) from events a cross join events b where a.message_id < b.message_id"
c.execute("SET statement_timeout = '3s'")
start = time.time()
try:
    c.execute(CROSS).fetchall()
    show("timeout_s", "not stopped")
except psycopg.Error as e:
    show("timeout_s", round(time.time() - start, 3))
    show("timeout_code", e.sqlstate)

psql = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(sql_port), "-U", "bench",
                         "-d", "store", "-X", "-c", "SET statement_timeout = 0", "-c", CROSS],
                        env={"PGPASSWORD": "tok-store", "PATH": "/usr/bin:/bin"},
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(2)
killed = time.time()
psql.kill()
psql.wait()
d = connect()
d.execute("SET statement_timeout = 0")
d.execute("select 1").fetchall()
show("cancel_after_kill_s", round(time.time() - killed, 3))

heavy_state = ["starting"]
stop = threading.Event()
def heavy():
    h = connect()
    h.execute("SET statement_timeout = 0")
    while not stop.is_set():
        heavy_state[0] = "running"
        try:
            h.execute("select count(*) from (select md5(cast(value as varchar)) k "
                      "from range(100000000) group by k) t").fetchall()
            heavy_state[0] = "finished"
        except psycopg.Error as e:
            heavy_state[0] = e.sqlstate
            if e.sqlstate != "53200":
                return
others = []
def other():
    o = connect("other")
    while not stop.is_set():
        start = time.perf_counter()
        o.execute("select count(*) from profiles").fetchall()
        others.append((time.perf_counter() - start) * 1000)
        time.sleep(0.25)
# The other space's first query registers its tables (reads each Delta log): measured on
# its own, idle, so the figures under load are of queries to a space already being served.
w = connect("other")
start = time.perf_counter()
w.execute("select count(*) from profiles").fetchall()
show("other_first_idle_ms", round((time.perf_counter() - start) * 1000, 1))
w.close()
h = threading.Thread(target=heavy)
h.start()
time.sleep(3)
o = threading.Thread(target=other)
o.start()
load = lookups(secs)
state = heavy_state[0]
stop.set()
o.join()
with open(f"/proc/{server_pid}/status") as f:
    peak = [l.split()[1] for l in f if l.startswith("VmHWM")][0]
show("api_load_requests", len(load))
show("api_load_p50_ms", round(pct(load, 0.5), 2))
show("api_load_p99_ms", round(pct(load, 0.99), 2))
show("other_queries", len(others))
show("other_p50_ms", round(pct(others, 0.5), 1))
show("other_p95_ms", round(pct(others, 0.95), 1))
show("other_max_ms", round(max(others), 1))
show("heavy_state", state)
show("server_peak_rss_mb", int(peak) // 1024)
show("ratio_api_p99", round(pct(load, 0.99) / pct(idle, 0.99), 2))
import os
os._exit(0)
"#;
