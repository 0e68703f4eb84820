//! Live identity applies repairs.yaml as a run does: a blocked anonymous id joins no profile,
//! and an unlinked one links nobody, for events the collector receives after the run.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::live::{cohort, init_collecting, start_with, traits, wait_until};
use crate::serve::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn live_identity_applies_blocks_and_unlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    init_collecting(root, "wk_rep");
    std::fs::write(
        root.join("myspace/repairs.yaml"),
        "- block: anonymous_id:kiosk-live\n  reason: the shop's tablet\n\
         - unlink: anonymous_id:shared-live\n  reason: the family laptop\n",
    )
    .unwrap();
    cohort(root, &["run", "myspace"]);
    let (api, port) = (free_port(), free_port());
    let _server = start_with(root, api, port, false);
    let client = reqwest::Client::new();
    crate::collect::wait_up(&client, port).await;
    let batch = json!({"batch": [
        {"type": "identify", "userId": "lr-a", "anonymousId": "kiosk-live",
         "traits": {"plan": "a"}},
        {"type": "identify", "userId": "lr-c", "anonymousId": "shared-live",
         "traits": {"plan": "c"}},
        {"type": "track", "event": "Page Viewed", "anonymousId": "shared-live"},
    ]});
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/batch"))
        .basic_auth("wk_rep", Some(""))
        .header("content-type", "application/json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until(&client, api, "user_id:lr-a", |t| t.contains_key("plan")).await;
    let c = wait_until(&client, api, "user_id:lr-c", |t| t.contains_key("plan")).await;
    assert_eq!(c["plan"]["value"], json!("c"));
    // The unlinked id has a profile of its own (its lone page view), without lr-c's plan.
    let start = Instant::now();
    let shared = loop {
        if let Some(t) = traits(&client, api, "anonymous_id:shared-live").await {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no shared-live profile"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!shared.contains_key("plan"), "{shared:?}");
    // The blocked id belongs to no profile.
    assert!(
        traits(&client, api, "anonymous_id:kiosk-live")
            .await
            .is_none()
    );
}
