//! `cohort serve` as a user starts it: the binary over a space that never ran runs it at once
//! on its schedule, serves the result, takes `POST .../runs`, and `cohort runs` lists both runs
//! with their triggers.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::cohort_bin;

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the server when the test ends, however it ends.
pub(crate) struct Server(pub(crate) Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cohort serve --no-schedule <args>` in `dir` on free ports, its standard error to
/// `stderr`; the SQL endpoint's port and the server.
pub(crate) fn serve_in(dir: &std::path::Path, args: &[&str], stderr: Stdio) -> (u16, Server) {
    let (api, sql) = (free_port(), free_port());
    let server = Server(
        Command::new(cohort_bin())
            .current_dir(dir)
            .args(["serve", "--no-schedule"])
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--sql-addr", &format!("127.0.0.1:{sql}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    (sql, server)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let r = client
        .get(url)
        .basic_auth("tok-shop", Some(""))
        .send()
        .await
        .ok()?;
    serde_json::from_str(&r.text().await.ok()?).ok()
}

/// Polls `url` until `done` holds for its body (at most `secs`).
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        if let Some(v) = get_json(client, url).await
            && done(&v)
        {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{url} did not get there in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn serve_runs_a_new_space_at_once_then_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    crate::profile_api::write_shop(tmp.path(), "shop");
    let (api, sql) = (free_port(), free_port());
    let _server = Server(
        Command::new(cohort_bin())
            .arg("serve")
            .arg(tmp.path())
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--sql-addr", &format!("127.0.0.1:{sql}")])
            .args(["--token", "shop=tok-shop", "--poll", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let runs_url = format!("http://127.0.0.1:{api}/v1/spaces/shop/runs");
    let v = wait_for(&client, &runs_url, 120, |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert_eq!(v["data"][0]["status"], "succeeded", "{v}");
    assert_eq!(
        v["data"][0]["trigger"], "schedule: trait:orders, audience:recent_buyers",
        "a space that never ran runs at once, with everything due"
    );
    let traits = format!(
        "http://127.0.0.1:{api}/v1/spaces/shop/collections/users/profiles/user_id:u1/traits"
    );
    let t = wait_for(&client, &traits, 30, |v| v.get("traits").is_some()).await;
    assert_eq!(t["traits"]["orders"], 2, "{t}");

    let r = client
        .post(&runs_url)
        .basic_auth("tok-shop", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v = wait_for(&client, &runs_url, 120, |v| {
        v["data"].as_array().is_some_and(|d| d.len() >= 2)
    })
    .await;
    assert_eq!(v["data"][0]["trigger"], "manual: api", "{v}");
    assert_eq!(v["data"][0]["status"], "succeeded");

    let out = Command::new(cohort_bin())
        .arg("runs")
        .arg(tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("manual: api"), "{text}");
    assert!(
        text.contains("schedule: trait:orders, audience:recent_buyers"),
        "{text}"
    );
    assert!(text.contains("recent_buyers"), "{text}");
}
