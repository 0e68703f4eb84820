//! `kill -9` of `cohort serve` under load, again and again: after a restart every event that
//! was answered 200 is in the lake, and none is there twice.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::collect::{KEY, lake_rows, start, stop, wait_up, write_space};
use crate::serve::free_port;

/// One client: batches of `size` fresh ids until the server goes away; returns the ids it
/// got a 200 for.
async fn send_until_gone(port: u16, client_no: usize, round: usize, size: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for b in 0.. {
        let ids: Vec<String> = (0..size)
            .map(|i| format!("r{round}-c{client_no}-b{b}-{i}"))
            .collect();
        let batch: Vec<Value> = ids
            .iter()
            .map(|id| json!({"type": "track", "event": "Tick", "userId": format!("u{client_no}"), "messageId": id, "properties": {"n": b}}))
            .collect();
        match client
            .post(format!("http://127.0.0.1:{port}/v1/batch"))
            .basic_auth(KEY, Some(""))
            .body(json!({ "batch": batch }).to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => acked.extend(ids),
            Ok(r) => panic!("status {}", r.status()),
            Err(_) => return acked,
        }
    }
    unreachable!()
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_event_and_repeats_none() {
    let tmp = tempfile::tempdir().unwrap();
    write_space(tmp.path());
    let mut acked: Vec<String> = Vec::new();
    for round in 0..4 {
        let port = free_port();
        // Flush often, so kills land before, during and after flushes.
        let mut server = start(tmp.path(), port, "0.2");
        let client = reqwest::Client::new();
        wait_up(&client, port).await;
        let clients: Vec<_> = (0..4)
            .map(|c| tokio::spawn(send_until_gone(port, c, round, 50)))
            .collect();
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        for c in clients {
            acked.extend(c.await.unwrap());
        }
    }
    assert!(
        acked.len() > 1000,
        "the load was too light: {}",
        acked.len()
    );
    // A last start replays what the kills left in the log; stopping it flushes the rest.
    let port = free_port();
    let server = start(tmp.path(), port, "600");
    wait_up(&reqwest::Client::new(), port).await;
    stop(server);
    let rows = lake_rows(tmp.path()).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (r, _) in &rows {
        *seen.entry(r["message_id"].clone().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "events in the lake twice: {twice:?}");
    let missing: Vec<_> = acked
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the lake ({} of {}): {missing:?}",
        acked.iter().filter(|id| !seen.contains_key(*id)).count(),
        acked.len()
    );
    assert!(
        !tmp.path()
            .join("shop/.cohort/collector/web")
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "wal")),
        "a clean stop leaves no log segment behind"
    );
}
