//! The collector writing an `s3://` source (moto on loopback): requests are still taken while
//! the bucket is gone, the flush retries, and once the bucket is back every acknowledged event
//! lands there and the next run reads it.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::collect::{KEY, stop, wait_up};
use crate::common::cohort_bin;
use crate::s3::Moto;
use crate::serve::{Server, free_port};

fn aws(cmd: &mut Command, moto: &Moto) {
    cmd.env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
}

#[tokio::test]
async fn the_collector_writes_an_s3_source_and_waits_out_a_missing_bucket() {
    let moto = Moto::start();
    assert!(
        moto.request("PUT", "/collect-test")
            .unwrap()
            .contains("200")
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("lake")).unwrap();
    std::fs::write(
        tmp.path().join("lake/space.yaml"),
        format!(
            "name: lake\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    \
             url: s3://collect-test/events\n    write_keys: [{KEY}]\noutput: ./out\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new(cohort_bin());
    cmd.current_dir(tmp.path())
        .args(["serve", "lake", "--no-schedule", "--token", "lake=tok"])
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--sql-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--collect-addr", &format!("127.0.0.1:{port}")])
        .args(["--flush-interval", "0.3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    aws(&mut cmd, &moto);
    let server = Server(cmd.spawn().unwrap());
    let client = reqwest::Client::new();
    wait_up(&client, port).await;

    // The bucket goes away: events are still taken (they are in the log) ...
    assert!(
        moto.request("DELETE", "/collect-test")
            .unwrap()
            .contains("204")
    );
    for i in 0..3 {
        let r = client
            .post(format!("http://127.0.0.1:{port}/v1/track"))
            .basic_auth(KEY, Some(""))
            .header("content-type", "application/json")
            .body(json!({"userId": format!("u{i}"), "event": "Order Completed", "messageId": format!("s3-{i}")}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // ... the flush fails and retries; the bucket comes back, and stopping flushes all.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        moto.request("PUT", "/collect-test")
            .unwrap()
            .contains("200")
    );
    let err = stop(server);
    assert!(err.contains("cannot flush segment"), "{err}");
    assert!(
        err.contains("every acknowledged event is in the lake"),
        "{err}"
    );

    let mut run = Command::new(cohort_bin());
    run.current_dir(tmp.path()).args(["run", "lake"]);
    aws(&mut run, &moto);
    let out = run.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 events"), "{text}");
}
