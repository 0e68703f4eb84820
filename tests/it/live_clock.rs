//! Time passing with no new event changes live values, as a batch run at that time would: an
//! order leaves a one-minute window, so the count goes back to 0 and the profile exits the
//! audience (an exit the live status and destinations see), about when the edge passes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::collect::{stop, wait_up};
use crate::live::{cohort, init_collecting, live_status, start_with, wait_until};
use crate::serve::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn a_window_edge_passing_changes_live_values_without_a_new_event() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    init_collecting(root, "wk_clock");
    std::fs::write(
        root.join("myspace/traits/orders_last_minute.yaml"),
        "query: \"event('Order Completed').within(1 minute).count()\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("myspace/audiences/ordered_last_minute.yaml"),
        "query: \"event('Order Completed').within(1 minute).count() >= 1\"\n",
    )
    .unwrap();
    cohort(root, &["run", "myspace"]);
    let (api, port) = (free_port(), free_port());
    let server = start_with(root, api, port, false);
    let client = reqwest::Client::new();
    wait_up(&client, port).await;
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/track"))
        .basic_auth("wk_clock", Some(""))
        .header("content-type", "application/json")
        .body(
            json!({"event": "Order Completed", "userId": "clock-1",
                   "properties": {"revenue": 5, "currency": "EUR"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = Instant::now();
    let value = |t: &serde_json::Map<String, Value>, k: &str| t.get(k).map(|v| v["value"].clone());
    let id = "user_id:clock-1";
    let t = wait_until(&client, api, id, |t| {
        value(t, "orders_last_minute") == Some(json!(1))
    })
    .await;
    assert_eq!(value(&t, "ordered_last_minute"), Some(json!(true)));
    // No new event: the edge passes a minute after the order.
    let later = wait_until(&client, api, id, |t| {
        value(t, "orders_last_minute") == Some(json!(0))
    })
    .await;
    let took = sent.elapsed();
    println!("the count went back to 0 after {took:?}");
    assert!(took >= Duration::from_secs(55), "too early: {took:?}");
    assert!(took <= Duration::from_secs(75), "too late: {took:?}");
    assert_ne!(value(&later, "ordered_last_minute"), Some(json!(true)));
    let status = live_status(&client, api).await;
    let exited = status["changes"].as_array().unwrap().iter().any(|c| {
        c["audience"] == "ordered_last_minute"
            && c["change"] == "exited"
            && c["identifiers"]["user_id"][0] == "clock-1"
    });
    assert!(exited, "{status}");
    let as_of = later["orders_last_minute"]["updated_at"]
        .as_str()
        .unwrap()
        .to_string();
    stop(server);
    // A batch run at that time agrees.
    cohort(root, &["run", "myspace", "--as-of", &as_of]);
    let server = start_with(root, api, port, false);
    wait_up(&client, port).await;
    let batch = wait_until(&client, api, id, |_| true).await;
    assert_eq!(value(&batch, "orders_last_minute"), Some(json!(0)));
    assert_ne!(value(&batch, "ordered_last_minute"), Some(json!(true)));
    stop(server);
}
