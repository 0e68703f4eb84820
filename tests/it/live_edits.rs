//! Editing a live definition while `cohort serve` runs, as a user does it: the file changes in
//! the space folder. Until a run recomputes it, the edited audience keeps its previous values
//! while every other definition stays live; the server says how it will be recomputed; a
//! server started over edited files waits for them (`waiting` in the live status) and queues
//! the run that recomputes them; once that run publishes, the new definition is live; a broken
//! edit is reported at its file:line:col and changes nothing; an edit while a scheduler runs is
//! recomputed in the background by a run it queues.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::collect::{stop, wait_up};
use crate::live::{cohort, init_collecting, live_status, start_with, wait_until};
use crate::serve::free_port;

const AUDIENCE: &str = "myspace/audiences/repeat_buyers.yaml";

async fn order(client: &reqwest::Client, port: u16, user: &str) {
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/track"))
        .basic_auth("wk_edit", Some(""))
        .header("content-type", "application/json")
        .body(
            json!({"event": "Order Completed", "userId": user,
                      "properties": {"revenue": 10, "currency": "EUR"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The user's live traits once their order counts.
async fn ordered(client: &reqwest::Client, api: u16, user: &str) -> serde_json::Map<String, Value> {
    wait_until(client, api, &format!("user_id:{user}"), |t| {
        t.get("orders_90d").map(|v| &v["value"]) == Some(&json!(1))
    })
    .await
}

fn member(t: &serde_json::Map<String, Value>) -> bool {
    t.get("repeat_buyers").map(|v| &v["value"]) == Some(&json!(true))
}

async fn wait_member(client: &reqwest::Client, api: u16, user: &str, want: bool) {
    wait_until(client, api, &format!("user_id:{user}"), |t| {
        member(t) == want
    })
    .await;
}

fn set_threshold(root: &Path, n: u32) {
    std::fs::write(
        root.join(AUDIENCE),
        format!("query: \"event('Order Completed').count() >= {n}\"\n"),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_definition_keeps_its_values_until_a_run_recomputes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    init_collecting(root, "wk_edit");
    set_threshold(root, 1000);
    cohort(root, &["run", "myspace"]);
    let client = reqwest::Client::new();

    // Live with the published definition: one order is not 1000.
    let (api, port) = (free_port(), free_port());
    let server = start_with(root, api, port, false);
    wait_up(&client, port).await;
    order(&client, port, "edit-x").await;
    assert!(!member(&ordered(&client, api, "edit-x").await));

    // Edited: until a run recomputes it, the audience keeps its previous definition, and the
    // other traits stay live.
    set_threshold(root, 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    order(&client, port, "edit-y").await;
    assert!(!member(&ordered(&client, api, "edit-y").await));
    let said = stop(server);
    assert!(
        said.contains("definitions changed (audiences/repeat_buyers.yaml); no scheduled runs here, so run `cohort run myspace` to recompute them"),
        "{said}"
    );

    // Started over the edited file: the audience waits for a run, the others are live.
    let server = start_with(root, api, port, false);
    wait_up(&client, port).await;
    let status = live_status(&client, api).await;
    assert_eq!(
        status["live"]["waiting"],
        json!(["audience:repeat_buyers"]),
        "{status}"
    );
    order(&client, port, "edit-z").await;
    assert!(!member(&ordered(&client, api, "edit-z").await));
    stop(server);

    // With a scheduler, the server queues the run that recomputes it; then it is live.
    let server = start_with(root, api, port, true);
    wait_up(&client, port).await;
    for u in ["edit-x", "edit-y", "edit-z"] {
        wait_member(&client, api, u, true).await;
    }
    // The live engine loads that run (after the index, which answered above).
    let loading = Instant::now();
    loop {
        let status = live_status(&client, api).await;
        if status["live"]["waiting"] == json!([]) {
            break;
        }
        assert!(loading.elapsed() < Duration::from_secs(60), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    order(&client, port, "edit-w").await;
    assert!(member(&ordered(&client, api, "edit-w").await));

    // A broken edit is reported where it is, and changes nothing.
    std::fs::write(
        root.join(AUDIENCE),
        "query: \"event('Order Completed').count() >=\"\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    wait_member(&client, api, "edit-x", true).await;
    // Edited while it runs: a run it queues recomputes it in the background.
    let edited = Instant::now();
    set_threshold(root, 2);
    wait_member(&client, api, "edit-x", false).await;
    println!("recomputed {:?} after the edit", edited.elapsed());
    let said = stop(server);
    for line in [
        "the changed definitions have errors; runs keep the last valid ones",
        "audiences/repeat_buyers.yaml:1:",
        "definitions changed (audiences/repeat_buyers.yaml); a run recomputes them",
        "(manual: definitions changed: audiences/repeat_buyers.yaml) succeeded",
    ] {
        assert!(said.contains(line), "`{line}` not in:\n{said}");
    }
}
