//! Live definitions as a user meets them: `cohort init myspace` (relative, in the current
//! folder) with a write key, `cohort run myspace`, `cohort serve myspace`, events sent to the
//! collector, and the Profile API answering the new values at once. A batch run over the same
//! events at the same as-of is the reference: for every profile the events touched (an order
//! of a known customer, an identify that merges an anonymous profile into it, a new customer
//! from nothing, a repeated message id), every trait and audience the API answers live equals
//! what it answers from the batch run. The space has a trait of every reducer (count, sum, avg,
//! min, max, first, last, mode, unique, unique count with `where` and `within`) and audiences
//! of every users kind (traits, `between`, funnels, dynamic references, nested), and a trait
//! and an audience with `backfill: false`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use serde_json::{Map, Value, json};

use crate::common::cohort_bin;
use crate::serve::{Server, free_port};

pub(crate) fn cohort(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(cohort_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "cohort {args:?} failed:\n{text}");
    text
}

/// `cohort init myspace` in `dir`, its source given the write key `key`.
pub(crate) fn init_collecting(dir: &Path, key: &str) {
    cohort(dir, &["init", "myspace"]);
    let yaml = std::fs::read_to_string(dir.join("myspace/space.yaml")).unwrap();
    let yaml = yaml.replacen(
        "url: ./data/events",
        &format!("url: ./data/events\n    write_keys: [{key}]"),
        1,
    );
    std::fs::write(dir.join("myspace/space.yaml"), yaml).unwrap();
}

fn start(dir: &Path, api: u16, collect: u16) -> Server {
    start_with(dir, api, collect, false)
}

/// `cohort serve myspace` from `dir`, with its scheduler when `schedule`.
pub(crate) fn start_with(dir: &Path, api: u16, collect: u16, schedule: bool) -> Server {
    let no_schedule: &[&str] = if schedule { &[] } else { &["--no-schedule"] };
    Server(
        Command::new(cohort_bin())
            .current_dir(dir)
            .env("CRM_WEBHOOK_TOKEN", "t-crm")
            .args(["serve", "myspace"])
            .args(no_schedule)
            .args(["--token", "store=tok"])
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--sql-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--collect-addr", &format!("127.0.0.1:{collect}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

pub(crate) async fn traits(
    client: &reqwest::Client,
    api: u16,
    id: &str,
) -> Option<Map<String, Value>> {
    let r = client
        .get(format!(
            "http://127.0.0.1:{api}/v1/spaces/store/collections/users/profiles/{id}/traits?limit=200&verbose=true"
        ))
        .basic_auth("tok", Some(""))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
    v["traits"].as_object().cloned()
}

/// Values only (`verbose` adds class and time), without SQL traits: those are batch (a
/// query over the warehouse on its own schedule) and keep the last run's value live.
fn values(t: &Map<String, Value>) -> Map<String, Value> {
    t.iter()
        .filter(|(_, v)| v["class"] != "sql_trait")
        .map(|(k, v)| (k.clone(), v["value"].clone()))
        .collect()
}

pub(crate) async fn wait_until(
    client: &reqwest::Client,
    api: u16,
    id: &str,
    done: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    let start = Instant::now();
    loop {
        if let Some(t) = traits(client, api, id).await
            && done(&t)
        {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{id} did not reach the expected traits"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /v1/spaces/store/live` once the engine has loaded a published run.
pub(crate) async fn live_status(client: &reqwest::Client, api: u16) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(r) = client
            .get(format!(
                "http://127.0.0.1:{api}/v1/spaces/store/live?limit=200"
            ))
            .basic_auth("tok", Some(""))
            .send()
            .await
            && let Ok(v) = serde_json::from_str::<Value>(&r.text().await.unwrap_or_default())
            && v["live"]["run_id"].is_string()
        {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "live never loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One row of text columns from a query over the published tables.
async fn one_row(space: &cohort::spec::Space, sql: &str) -> Vec<String> {
    let ctx = cohort::read::query_session(space, chrono::Utc::now())
        .await
        .unwrap();
    let b = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let b = b.iter().find(|b| b.num_rows() > 0).expect("a row");
    (0..b.num_columns())
        .map(|i| {
            let c = datafusion::arrow::compute::cast(
                b.column(i),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            c.as_string::<i32>().value(0).to_string()
        })
        .collect()
}

const EXTRA_TRAITS: [(&str, &str); 5] = [
    (
        "first_currency",
        "event('Order Completed').first(property('currency'))",
    ),
    (
        "smallest_order",
        "event('Order Completed').min(property('revenue'))",
    ),
    (
        "largest_order",
        "event('Order Completed').max(property('revenue'))",
    ),
    (
        "average_order_90d",
        "event('Order Completed').within(90 days).avg(property('revenue'))",
    ),
    (
        "products_viewed_30d",
        "event('Product Viewed').within(30 days).unique(property('product_id')).count()",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn live_values_equal_a_batch_run_over_the_same_events() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    init_collecting(root, "wk_live");
    for (k, q) in EXTRA_TRAITS {
        std::fs::write(
            root.join(format!("myspace/traits/{k}.yaml")),
            format!("query: \"{q}\"\n"),
        )
        .unwrap();
    }
    // Without backfill: only the events after the first run count.
    std::fs::write(
        root.join("myspace/traits/orders_since_added.yaml"),
        "query: \"event('Order Completed').count()\"\nbackfill: false\n",
    )
    .unwrap();
    std::fs::write(
        root.join("myspace/audiences/ordered_since_added.yaml"),
        "query: \"event('Order Completed').count() >= 1\"\nbackfill: false\n",
    )
    .unwrap();
    // The starter space's webhook, pointed at a receiver here.
    let (hook, received) = crate::destinations::receiver().await;
    let dest = root.join("myspace/destinations/crm_webhook.yaml");
    let yaml = std::fs::read_to_string(&dest).unwrap();
    std::fs::write(&dest, yaml.replace("http://127.0.0.1:8787/v1/batch", &hook)).unwrap();
    let validated = cohort(root, &["validate", "myspace"]);
    assert!(
        validated.contains("live   computed trait  average_order_90d")
            && validated.contains("live   audience        cart_abandoners")
            && validated.contains("batch  audience        active_big_accounts"),
        "validate says which definitions are live:\n{validated}"
    );
    cohort(root, &["run", "myspace"]);
    let space = crate::common::load(&root.join("myspace")).await;
    // A customer with an order and room for one more anonymous id, one of their orders, and
    // an anonymous-only profile.
    let customer = one_row(
        &space,
        "SELECT p.user_id, e.message_id FROM profiles p JOIN events e ON e.user_id = p.user_id \
         WHERE p.user_id IS NOT NULL AND e.event = 'Order Completed' \
         AND array_length(p.anonymous_id) < 4 ORDER BY p.user_id, e.message_id LIMIT 1",
    )
    .await;
    let (user, repeated) = (customer[0].clone(), customer[1].clone());
    let anon = one_row(
        &space,
        "SELECT anonymous_id[1] FROM profiles WHERE user_id IS NULL \
         AND array_length(anonymous_id) = 1 ORDER BY profile_id LIMIT 1",
    )
    .await[0]
        .clone();

    let (api, port) = (free_port(), free_port());
    let server = start(root, api, port);
    let client = reqwest::Client::new();
    crate::collect::wait_up(&client, port).await;
    let user_id = format!("user_id:{user}");
    let before = wait_until(&client, api, &user_id, |_| true).await;

    let batch = json!({"batch": [
        {"type": "track", "event": "Order Completed", "userId": user,
         "properties": {"revenue": 900.5, "currency": "JPY", "order_id": "live-1"}},
        // Already in the history: counts once (the first copy wins).
        {"type": "track", "event": "Order Completed", "userId": user, "messageId": repeated,
         "properties": {"revenue": 100000, "currency": "XXX"}},
        {"type": "identify", "userId": user, "anonymousId": anon,
         "traits": {"plan": "enterprise", "visits": 7}},
        {"type": "identify", "userId": "live-new-1", "traits": {"plan": "pro"}},
        {"type": "track", "event": "Product Viewed", "userId": "live-new-1",
         "properties": {"product_id": "p-live", "category": "Toys"}},
        {"type": "track", "event": "Product Viewed", "userId": "live-new-1",
         "properties": {"product_id": "p-live", "category": "Toys"}},
        {"type": "track", "event": "Checkout Started", "userId": "live-new-1",
         "properties": {"revenue": 20}},
    ]});
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/batch"))
        .basic_auth("wk_live", Some(""))
        .header("content-type", "application/json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = Instant::now();
    let ids = [
        user_id.clone(),
        format!("anonymous_id:{anon}"),
        "user_id:live-new-1".to_string(),
    ];
    let live_user = wait_until(&client, api, &ids[0], |t| {
        t.get("last_order_currency").map(|v| &v["value"]) == Some(&json!("JPY"))
    })
    .await;
    println!("live after {:?}", sent.elapsed());
    let mut live = Vec::new();
    for id in &ids {
        live.push(wait_until(&client, api, id, |t| t.contains_key("plan")).await);
    }
    // The live values moved (so the comparison below can fail), and the merge shows.
    assert_ne!(values(&before), values(&live_user), "live values changed");
    assert_eq!(
        live[1], live[0],
        "the anonymous profile is part of the customer now"
    );
    assert_eq!(live[0]["plan"]["value"], json!("enterprise"));
    // Without backfill, the customer's earlier orders do not count; the live one does.
    assert_eq!(before["orders_since_added"]["value"], json!(0));
    assert_ne!(
        before.get("ordered_since_added").map(|v| &v["value"]),
        Some(&json!(true))
    );
    assert_eq!(live[0]["orders_since_added"]["value"], json!(1));
    assert_eq!(live[0]["ordered_since_added"]["value"], json!(true));
    assert_eq!(live[2]["cart_abandoners"]["value"], json!(true));
    assert_eq!(live[2]["browsed_not_added"]["value"], json!(true));
    // The entries found live, with the identifiers destinations get.
    let status = live_status(&client, api).await;
    assert_eq!(status["live"]["error"], Value::Null, "{status}");
    assert_eq!(
        status["live"]["events"],
        json!(6),
        "the repeated message id counts once"
    );
    let entered: Vec<(&str, &str)> = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"] == "entered")
        .map(|c| {
            (
                c["audience"].as_str().unwrap(),
                c["identifiers"]["user_id"][0].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        entered.contains(&("cart_abandoners", "live-new-1")),
        "live changes: {status}"
    );
    // The customer entered `big_spenders` live, and its destination heard it within seconds.
    assert!(
        entered.contains(&("big_spenders", user.as_str())),
        "{status}"
    );
    let heard = |what: &str| {
        crate::destinations::requests(&received)
            .iter()
            .flat_map(|r| r.batch.clone())
            .filter(|m| m["userId"] == user.as_str() && m["event"] == what)
            .count()
    };
    let waiting = Instant::now();
    while heard("Audience Entered") == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the webhook never heard the live entry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "webhook heard the entry {:?} after the answer",
        sent.elapsed()
    );
    let as_of = live_user["total_revenue"]["updated_at"]
        .as_str()
        .unwrap()
        .to_string();
    let said = crate::collect::stop(server);
    assert!(
        !said.contains("live:"),
        "the live engine reported a failure:\n{said}"
    );

    // The batch run over the same events, as of the live evaluation.
    cohort(root, &["run", "myspace", "--as-of", &as_of]);
    let server = start(root, api, port);
    crate::collect::wait_up(&client, port).await;
    let status = live_status(&client, api).await;
    assert_eq!(
        status["live"]["events"],
        json!(0),
        "the run read every event: {status}"
    );
    for (id, l) in ids.iter().zip(&live) {
        let batch = wait_until(&client, api, id, |_| true).await;
        assert_eq!(
            values(l),
            values(&batch),
            "{id}: live (left) and the batch run (right) differ"
        );
    }
    let said = crate::collect::stop(server);
    assert!(
        !said.contains("live:"),
        "the live engine reported a failure:\n{said}"
    );
}
