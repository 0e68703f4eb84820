//! The web app as a new user meets it: `cohort demo`, then the `cohort serve` line the demo
//! prints (from the same working directory, relative paths), a second space beside it, and
//! headless Chromium going through every page (tests/browser/explorer.cjs). The CSVs it
//! downloads equal `cohort export`'s byte for byte; no endpoint of the app shows a space's
//! data without that space's token.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::quickstart::Shell;
use crate::serve::{Server, free_port};

const TOKEN: &str = "tok-store-3f9a";
const OTHER_TOKEN: &str = "tok-other-77c1";

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = client.get(url);
    if let Some(t) = token {
        r = r.basic_auth(t, Some(""));
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn json(client: &reqwest::Client, url: &str) -> Value {
    let (status, body) = get(client, url, Some(TOKEN)).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A bare email of a member of some audience who has recent events, and that audience.
async fn member_email(client: &reqwest::Client, api: &str) -> (String, String) {
    let list = json(client, &format!("{api}/audiences")).await;
    let mut keyed: Vec<(u64, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["entity"] == "users")
        .map(|a| {
            (
                a["size"].as_u64().unwrap_or(0),
                a["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keyed.sort();
    for (size, key) in keyed.into_iter().rev().filter(|(s, _)| *s > 0) {
        let a = json(client, &format!("{api}/audiences/{key}")).await;
        assert_eq!(a["size"].as_u64(), Some(size));
        for s in a["samples"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let p = json(client, &format!("{api}/explorer/profiles/users/{id}")).await;
            let email = p["identifiers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["type"] == "email")
                .map(|i| i["value"].as_str().unwrap().to_string());
            if let Some(e) = email.filter(|_| p["events_total"].as_u64() > Some(0)) {
                return (e, key);
            }
        }
    }
    panic!("no member of any audience has an email and recent events: {list}");
}

/// Every endpoint of the app, as the app calls them (`{id}`, `{key}` filled in).
fn app_urls(api: &str, id: &str, key: &str, email: &str) -> Vec<String> {
    vec![
        format!("{api}/search?q={email}"),
        format!("{api}/explorer/profiles/users/{id}"),
        format!("{api}/explorer/identity/{id}"),
        format!("{api}/audiences"),
        format!("{api}/audiences/{key}"),
        format!("{api}/audiences/{key}/conditions"),
        format!("{api}/audiences/{key}/explain?id=email:{email}"),
        format!("{api}/audiences/{key}/export?format=unformatted"),
        format!("{api}/runs"),
    ]
}

fn chromium() -> String {
    std::env::var("COHORT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

#[tokio::test]
async fn the_web_app_end_to_end_in_chromium() {
    let node_modules = std::env::var("COHORT_NODE_MODULES")
        .expect("COHORT_NODE_MODULES: .ci/test sets it (npm install of playwright-core)");
    let cwd = Shell::new();
    let demo = cwd.ok("cohort demo --events 30000");
    // The line the demo prints for the web app, with ports of our own.
    let serve_line = demo
        .lines()
        .skip_while(|l| !l.starts_with("Open the web app"))
        .map(str::trim)
        .find(|l| l.starts_with("cohort serve "))
        .unwrap_or_else(|| panic!("the demo does not say how to open the web app:\n{demo}"))
        .to_string();
    assert!(
        demo.contains("http://127.0.0.1:8088/"),
        "the demo names the app's address:\n{demo}"
    );
    // A second space beside it (its own name and token).
    cwd.ok("cohort init other >/dev/null && sed -i 's/^name: .*/name: other/' other/space.yaml");
    cwd.ok("cohort run other --as-of 2026-11-01");
    let (port, sql) = (free_port(), free_port());
    let _server = Server(
        cwd.command(&format!(
            "exec {serve_line} other --api-addr 127.0.0.1:{port} --sql-addr 127.0.0.1:{sql}"
        ))
        .env("COHORT_TOKEN_STORE", TOKEN)
        .env("COHORT_TOKEN_OTHER", OTHER_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let api = format!("{base}/v1/spaces/store");
    let client = reqwest::Client::new();
    let start = Instant::now();
    let up = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).basic_auth(TOKEN, Some("")).send().await;
            r.is_ok_and(|r| r.status() == 200)
        }
    };
    while !up(format!("{api}/audiences")).await {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (email, key) = member_email(&client, &api).await;
    let found = json(&client, &format!("{api}/search?q={email}")).await;
    let id = found["data"][0]["id"].as_str().unwrap().to_string();

    // Without the space's token: nothing of it, whichever endpoint.
    let marker = &id;
    for url in app_urls(&api, &id, &key, &email) {
        for token in [None, Some("wrong"), Some(OTHER_TOKEN)] {
            let (status, body) = get(&client, &url, token).await;
            assert_eq!(status, 401, "{url} with {token:?}: {body}");
            assert!(
                !body.contains(marker.as_str()) && !body.contains(&email),
                "{url}: {body}"
            );
        }
    }
    for (path, token) in [("/v1/whoami", None), ("/v1/whoami", Some("wrong"))] {
        let (status, body) = get(&client, &format!("{base}{path}"), token).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(!body.contains("store") && !body.contains("other"), "{body}");
    }
    let who: Value = serde_json::from_str(
        &get(&client, &format!("{base}/v1/whoami"), Some(OTHER_TOKEN))
            .await
            .1,
    )
    .unwrap();
    assert_eq!(who["spaces"].as_array().unwrap().len(), 1, "{who}");
    assert_eq!(who["spaces"][0]["name"], "other");
    let r = client
        .post(format!("{api}/preview"))
        .basic_auth(OTHER_TOKEN, Some(""))
        .header("content-type", "application/json")
        .body(r#"{"query": "trait('x') = 1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The page itself holds no data.
    let (status, page) = get(&client, &format!("{base}/"), None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("/app/app.js") && !page.contains(&email),
        "{page}"
    );

    // What `cohort export` writes now, before the browser's "Run now" publishes another run.
    for fmt in ["unformatted", "indexed", "single"] {
        cwd.ok(&format!(
            "cohort export cohort-demo {key} --format {fmt} --out exported-{fmt}.csv"
        ));
    }

    // The browser.
    let out = cwd.cwd.join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/explorer.cjs");
    let o = Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &node_modules)
        .env("BASE", &base)
        .env("TOKEN", TOKEN)
        .env("OTHER_TOKEN", OTHER_TOKEN)
        .env("SPACE", "store")
        .env("SEARCH", &email)
        .env("AUDIENCE", &key)
        .env("OUT", &out)
        .env("CHROMIUM", chromium())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let seen: Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    assert_eq!(
        seen["errors"],
        serde_json::json!([]),
        "script errors: {seen}"
    );
    assert!(seen["hits"].as_u64() >= Some(1), "{seen}");
    assert!(seen["graph_nodes"].as_u64() >= Some(1), "{seen}");
    assert!(seen["conditions"].as_u64() >= Some(1), "{seen}");
    assert!(seen["why"].as_str().unwrap().starts_with("In"), "{seen}");
    assert!(seen["caret"].as_str().unwrap().contains('^'), "{seen}");
    assert!(
        seen["parse_message"]
            .as_str()
            .unwrap()
            .starts_with("Line 1, column"),
        "{seen}"
    );
    let preview: u64 = seen["preview_size"]
        .as_str()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(preview > 0, "{seen}");
    assert!(
        seen["runs_after"].as_u64() > seen["runs_before"].as_u64(),
        "{seen}"
    );
    assert!(
        seen["last_trigger"]
            .as_str()
            .unwrap()
            .contains("manual: api"),
        "{seen}"
    );
    assert_eq!(
        seen["switcher"],
        serde_json::json!(["other", "store"]),
        "{seen}"
    );
    assert_eq!(seen["cross"], 401, "{seen}");
    eprintln!(
        "web app over the demo's data: profile page {} ms, audience list {} ms (median of 5 loads)",
        seen["profile_ms"], seen["audience_list_ms"]
    );

    // The downloads equal `cohort export`, byte for byte.
    for fmt in ["unformatted", "indexed", "single"] {
        let want = std::fs::read(cwd.cwd.join(format!("exported-{fmt}.csv"))).unwrap();
        let got = std::fs::read(out.join(format!("{fmt}.csv"))).unwrap();
        assert!(want.len() > 20, "{fmt}: {}", String::from_utf8_lossy(&want));
        assert!(
            got == want,
            "{fmt}: the download differs from `cohort export`"
        );
    }
    // Screenshots of each page, kept with the test's files (and copied where asked).
    let pages = [
        "signin",
        "search",
        "profile",
        "audience",
        "audiences",
        "builder-error",
        "builder",
        "runs",
    ];
    for p in pages {
        let png = out.join(format!("{p}.png"));
        assert!(std::fs::metadata(&png).unwrap().len() > 1000, "{p}.png");
        if let Ok(dir) = std::env::var("COHORT_EXPLORER_SCREENSHOTS") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&png, Path::new(&dir).join(format!("{p}.png"))).unwrap();
        }
    }
}
