//! The collector as users reach it: `cohort serve` started in the space's parent folder with
//! a relative path, Segment's own SDKs (analytics-python, analytics-node) and plain HTTP
//! sending to it, the events landing in the source as Parquet, and the next `cohort run`
//! ingesting them. Bad requests get a 400 and keep nothing, and no mangled request gets a 5xx
//! (`kill -9`: collect_kill.rs; S3: collect_s3.rs; analytics.js: collect_browser.rs).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::Array as _;
use serde_json::{Value, json};

use crate::common::{cohort_bin, python};
use crate::serve::{Server, free_port};

pub(crate) const KEY: &str = "wk-shop-test";

/// A space `shop` under `root` whose one source takes write key [`KEY`].
pub(crate) fn write_space(root: &Path) {
    write_space_with_key(root, KEY);
}

fn write_space_with_key(root: &Path, key: &str) {
    let dir = root.join("shop");
    std::fs::create_dir_all(dir.join("traits")).unwrap();
    std::fs::write(
        dir.join("space.yaml"),
        format!(
            "name: shop\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    \
             url: ./data/events\n    write_keys: [{key}]\noutput: ./out\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("traits/orders.yaml"),
        "query: \"event('Order Completed').count()\"\n",
    )
    .unwrap();
}

/// `cohort serve shop` in `root`, collecting on `port`, flushing every `flush` seconds.
pub(crate) fn start(root: &Path, port: u16, flush: &str) -> Server {
    Server(
        Command::new(cohort_bin())
            .current_dir(root)
            .args(["serve", "shop", "--no-schedule", "--token", "shop=tok"])
            .args(["--api-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--sql-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--collect-addr", &format!("127.0.0.1:{port}")])
            .args(["--flush-interval", flush])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

pub(crate) async fn wait_up(client: &reqwest::Client, port: u16) {
    let start = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "collector not up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the server as Ctrl-C would and returns what it printed.
pub(crate) fn stop(mut s: Server) -> String {
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(s.0.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    while s.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    use std::io::Read;
    s.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    err
}

/// Every row of the collected Parquet files, by message id, with the file it is in.
pub(crate) async fn lake_rows(root: &Path) -> Vec<(HashMap<String, Option<String>>, String)> {
    let dir = root.join("shop/data/events");
    let mut files = Vec::new();
    if dir.exists() {
        for day in std::fs::read_dir(&dir).unwrap() {
            let day = day.unwrap().path();
            for f in std::fs::read_dir(&day).unwrap() {
                let f = f.unwrap().path();
                let name = f.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with('.') {
                    // A file a killed flush was writing: hidden, so runs never read it.
                    continue;
                }
                assert!(
                    name.starts_with("collect-") && name.ends_with(".parquet"),
                    "only whole collected files are visible: {}",
                    f.display()
                );
                files.push(f);
            }
        }
    }
    let mut out = Vec::new();
    for f in files {
        let file = std::fs::File::open(&f).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let schema = batch.schema();
            for i in 0..batch.num_rows() {
                let mut row = HashMap::new();
                for (c, field) in schema.fields().iter().enumerate() {
                    let col = batch.column(c);
                    let a = col
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::StringArray>()
                        .unwrap();
                    row.insert(
                        field.name().clone(),
                        (!a.is_null(i)).then(|| a.value(i).to_string()),
                    );
                }
                out.push((row, f.display().to_string()));
            }
        }
    }
    out
}

pub(crate) fn by_id(rows: &[(HashMap<String, Option<String>>, String)]) -> HashMap<String, Value> {
    rows.iter()
        .map(|(r, _)| {
            let v: serde_json::Map<String, Value> = r
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect();
            (r["message_id"].clone().unwrap(), Value::Object(v))
        })
        .collect()
}

fn json_of(v: &Value, col: &str) -> Value {
    serde_json::from_str(v[col].as_str().unwrap_or("null")).unwrap()
}

#[tokio::test]
async fn segments_sdks_send_to_the_collector_and_a_run_ingests_their_events() {
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let port = free_port();
    let server = start(tmp.path(), port, "600");
    let client = reqwest::Client::new();
    wait_up(&client, port).await;

    // analytics-python, Segment's own, in sync mode against the collector.
    let script = format!(
        r#"
import os, sys
import segment.analytics as analytics
errors = []
analytics.write_key = "{KEY}"
analytics.host = "http://127.0.0.1:{port}"
analytics.sync_mode = True
analytics.on_error = lambda e, batch: errors.append(repr(e))
analytics.identify("py-user", {{"email": "Py@Example.com", "plan": {{"tier": 2}}}}, message_id="py-identify")
analytics.track("py-user", "Order Completed", {{"revenue": 12.5, "items": [{{"sku": "a-1"}}]}}, message_id="py-order")
analytics.page("py-user", "Docs", "Pricing", {{"path": "/pricing"}}, message_id="py-page")
analytics.group("py-user", "acct-9", {{"name": "Acme"}}, message_id="py-group")
analytics.alias("py-anon", "py-user", message_id="py-alias")
analytics.flush()
sys.stdout.write("errors=" + str(errors) + "\n")
sys.stdout.flush()
os._exit(1 if errors else 0)
"#
    );
    let out = Command::new(python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "analytics-python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // analytics-node, Segment's own, with its batching.
    let node_modules = std::env::var("COHORT_NODE_MODULES")
        .expect("COHORT_NODE_MODULES: .ci/test sets it (npm install of @segment/analytics-node)");
    let js = format!(
        r#"
const {{ Analytics }} = require('@segment/analytics-node');
const a = new Analytics({{ writeKey: '{KEY}', host: 'http://127.0.0.1:{port}', path: '/v1/batch', flushAt: 3 }});
const errors = [];
a.on('error', (e) => errors.push(String(e && (e.reason || e.code || e))));
a.identify({{ userId: 'node-user', traits: {{ email: 'node@example.com' }}, messageId: 'node-identify' }});
a.track({{ userId: 'node-user', event: 'Order Completed', properties: {{ revenue: 7 }}, messageId: 'node-order' }});
a.screen({{ anonymousId: 'node-anon', name: 'Home', messageId: 'node-screen' }});
a.track({{ anonymousId: 'node-anon', event: 'Order Completed', timestamp: new Date('2026-11-30T12:00:00Z'), messageId: 'node-late' }});
a.closeAndFlush().then(() => {{ console.log('errors=' + JSON.stringify(errors)); process.exit(errors.length ? 1 : 0); }});
"#
    );
    let out = Command::new("node")
        .args(["-e", &js])
        .env("NODE_PATH", &node_modules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "analytics-node: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing is in the lake before a flush (the interval is 10 minutes): stopping flushes.
    assert!(lake_rows(tmp.path()).await.is_empty());
    let err = stop(server);
    assert!(
        err.contains("every acknowledged event is in the lake"),
        "{err}"
    );
    let rows = lake_rows(tmp.path()).await;
    let ev = by_id(&rows);
    assert_eq!(rows.len(), 9, "{ev:#?}");
    let identify = &ev["py-identify"];
    assert_eq!(identify["type"], "identify");
    assert_eq!(identify["user_id"], "py-user");
    assert_eq!(
        json_of(identify, "traits"),
        json!({"email": "Py@Example.com", "plan": {"tier": 2}})
    );
    assert_eq!(
        json_of(identify, "context")["library"]["name"],
        "analytics-python"
    );
    let order = &ev["py-order"];
    assert_eq!(order["event"], "Order Completed");
    assert_eq!(
        json_of(order, "properties"),
        json!({"revenue": 12.5, "items": [{"sku": "a-1"}]})
    );
    assert!(order["sent_at"].is_string() && order["received_at"].is_string());
    assert_eq!(ev["py-page"]["event"], "Pricing");
    assert_eq!(ev["py-page"]["category"], "Docs");
    assert_eq!(ev["py-group"]["group_id"], "acct-9");
    assert_eq!(ev["py-alias"]["previous_id"], "py-anon");
    assert_eq!(ev["node-screen"]["type"], "screen");
    assert_eq!(ev["node-screen"]["anonymous_id"], "node-anon");
    assert_eq!(
        json_of(&ev["node-identify"], "context")["library"]["name"],
        "@segment/analytics-node"
    );
    // A late event goes to its own day's partition.
    let late = rows
        .iter()
        .find(|(r, _)| r["message_id"].as_deref() == Some("node-late"))
        .unwrap();
    assert!(late.1.contains("dt=2026-11-30"), "{}", late.1);
    assert!(
        ev["node-late"]["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-30T12:00:0")
    );

    // The next run ingests the collected files like any others.
    let out = Command::new(cohort_bin())
        .current_dir(tmp.path())
        .args(["run", "shop"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("9 events"), "{text}");
}

async fn post(client: &reqwest::Client, port: u16, path: &str, body: Value) -> (u16, Value) {
    let r = client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .basic_auth(KEY, Some(""))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn bad_requests_get_a_clear_answer_and_keep_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let port = free_port();
    let server = start(tmp.path(), port, "600");
    let client = reqwest::Client::new();
    wait_up(&client, port).await;
    let good = |id: &str| json!({"type": "track", "event": "Order Completed", "userId": "u", "messageId": id});

    // A batch with one bad message keeps none of it, and says which and why.
    let (s, v) = post(
        &client,
        port,
        "/v1/batch",
        json!({"batch": [good("b-0"), {"type": "track", "userId": "u", "messageId": "b-1"}, good("b-2")]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("1 of 3 message(s) refused")
            && msg.contains("batch[1] (messageId `b-1`): a track call needs `event`"),
        "{msg}"
    );
    // Not JSON, the wrong shape, too large, an unknown or missing write key.
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/track"))
        .basic_auth(KEY, Some(""))
        .body("{\"event\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("not JSON"),
        "{v}"
    );
    let (s, v) = post(&client, port, "/v1/batch", json!({"batch": {"a": 1}})).await;
    assert_eq!(s, 400, "{v}");
    let big: Vec<Value> = (0..40)
        .map(|i| json!({"type": "track", "event": "x", "userId": "u", "messageId": format!("big-{i}"), "properties": {"pad": "x".repeat(15_000)}}))
        .collect();
    let (s, v) = post(&client, port, "/v1/batch", json!({ "batch": big })).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("500 KB"),
        "{v}"
    );
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/track"))
        .basic_auth("wk-nobody", Some(""))
        .body(good("x-1").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/track"))
        .body(good("x-2").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Good requests: the write key in the body works too; a missing messageId is made.
    let (s, v) = post(&client, port, "/v1/track", good("ok-1")).await;
    assert_eq!((s, &v), (200, &json!({"success": true})));
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/batch"))
        .header("content-type", "text/plain")
        .body(
            json!({"writeKey": KEY, "batch": [good("ok-2"), {"type": "identify", "anonymousId": "a-1", "traits": {"x": 1}}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop(server);
    let rows = lake_rows(tmp.path()).await;
    let mut ids: Vec<String> = rows
        .iter()
        .map(|(r, _)| r["message_id"].clone().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(&ids[1..], ["ok-1", "ok-2"]);
    assert_eq!(
        ids[0].len(),
        36,
        "a generated messageId is a UUID: {}",
        ids[0]
    );
}

#[tokio::test]
async fn the_docs_curl_example_is_taken() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/collector.md"))
            .unwrap();
    let curl = doc
        .split("```sh\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("curl "))
        .expect("a curl example in docs/collector.md");
    let tmp = tempfile::tempdir().unwrap();
    write_space_with_key(tmp.path(), "wk-web-prod");
    let port = free_port();
    let server = start(tmp.path(), port, "600");
    wait_up(&reqwest::Client::new(), port).await;
    let cmd = curl.replace("127.0.0.1:8089", &format!("127.0.0.1:{port}"));
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"success":true}"#,
        "{cmd}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(server);
    let rows = lake_rows(tmp.path()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0["event"].as_deref(), Some("Order Completed"));
}

#[tokio::test]
async fn no_mangled_request_gets_a_5xx() {
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let port = free_port();
    let server = start(tmp.path(), port, "600");
    let client = reqwest::Client::new();
    wait_up(&client, port).await;
    let good = json!({"batch": [
        {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m-1",
         "timestamp": "2026-12-01T10:00:00Z", "properties": {"revenue": 12.5, "tags": ["a", "b"]}},
        {"type": "identify", "anonymousId": "a-1", "traits": {"email": "x@y.z"}},
        {"type": "alias", "previousId": "a-1", "userId": "u1"}
    ], "sentAt": "2026-12-01T10:00:01Z"})
    .to_string()
    .into_bytes();
    // Deterministic mangling: byte flips, cuts, insertions, and some shapes of their own.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bodies: Vec<Vec<u8>> = vec![
        b"[".repeat(10_000),
        format!("{{\"batch\": [{}]}}", "{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\"},".repeat(3) + "1").into_bytes(),
        br#"{"batch": [{"type": "track", "event": "x", "userId": "u", "timestamp": "+275760-09-13T00:00:00Z"}]}"#.to_vec(),
        br#"{"type": "track", "event": "x", "userId": 1e400}"#.to_vec(),
        vec![0xff, 0xfe, 0x00],
        Vec::new(),
    ];
    for _ in 0..150 {
        let mut b = good.clone();
        for _ in 0..=(next() % 4) {
            let at = (next() as usize) % b.len();
            match next() % 3 {
                0 => b[at] = (next() % 256) as u8,
                1 => b.truncate(at.max(1)),
                _ => b.insert(at, b"{}[]\",:\\0"[(next() % 9) as usize]),
            }
        }
        bodies.push(b);
    }
    let mut statuses = std::collections::BTreeMap::new();
    for b in bodies {
        for path in ["/v1/batch", "/v1/track"] {
            let r = client
                .post(format!("http://127.0.0.1:{port}{path}"))
                .basic_auth(KEY, Some(""))
                .header("content-type", "application/json")
                .body(b.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(
                status < 500,
                "{status} for {:?}: {text}",
                String::from_utf8_lossy(&b)
            );
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            if status != 200 {
                assert!(v["error"]["message"].is_string(), "{v}");
            }
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    assert!(
        statuses.contains_key(&400) && statuses.contains_key(&200),
        "{statuses:?}"
    );
    stop(server);
}
