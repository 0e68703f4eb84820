//! The Profile API end to end: a space run for real, then requests on the router without a
//! socket (every endpoint, pagination, auth, errors, rate limit, two isolated spaces) and over
//! a real bound port (a second run's results appear without a restart).

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use cohort::serve::ServedSpace;
use cohort::serve::api::{self, ApiSpace, RunTrigger};
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{EVENT_COLUMNS, load, write_space, write_text_parquet};

/// A shop: Ada buys twice (in the last 14 days) and belongs to Acme; Bob only browsed, long ago.
pub fn write_shop(dir: &Path, name: &str) {
    write_space(dir, name, &[("web", "events", "./data/events")], "./out");
    std::fs::create_dir_all(dir.join("traits")).unwrap();
    std::fs::create_dir_all(dir.join("audiences")).unwrap();
    std::fs::write(
        dir.join("traits/orders.yaml"),
        "query: \"event('Order Completed').count()\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("audiences/recent_buyers.yaml"),
        "query: \"event('Order Completed').within(7 days).count() >= 1\"\n",
    )
    .unwrap();
    let rows: Vec<Vec<Option<&str>>> = vec![
        vec![
            Some("m1"),
            Some("identify"),
            None,
            Some("u1"),
            Some("a1"),
            None,
            None,
            Some("2026-10-28T10:00:00Z"),
            None,
            Some(r#"{"email":"Ada@Example.com","plan":"pro","name":"Ada"}"#),
            Some("{}"),
        ],
        vec![
            Some("m2"),
            Some("track"),
            Some("Order Completed"),
            Some("u1"),
            None,
            None,
            None,
            Some("2026-10-29T10:00:00Z"),
            Some(r#"{"revenue":30}"#),
            None,
            Some(r#"{"ip":"10.0.0.1"}"#),
        ],
        vec![
            Some("m3"),
            Some("track"),
            Some("Order Completed"),
            Some("u1"),
            None,
            None,
            None,
            Some("2026-10-30T10:00:00Z"),
            Some(r#"{"revenue":12.5}"#),
            None,
            None,
        ],
        vec![
            Some("m4"),
            Some("group"),
            None,
            Some("u1"),
            None,
            Some("acme"),
            None,
            Some("2026-10-30T11:00:00Z"),
            None,
            Some(r#"{"name":"Acme"}"#),
            None,
        ],
        vec![
            Some("m5"),
            Some("page"),
            None,
            Some("u2"),
            None,
            None,
            None,
            Some("2026-09-01T10:00:00Z"),
            None,
            None,
            None,
        ],
    ];
    write_text_parquet(
        &dir.join("data/events/dt=2026-10-30/part-0.parquet"),
        &EVENT_COLUMNS,
        &rows,
    );
}

/// Runs the space in `dir` as of `as_of` and returns it.
pub async fn run_at(dir: &Path, as_of: &str) -> cohort::spec::Space {
    let space = load(dir).await;
    let opts = cohort::run::RunOptions {
        as_of: Some(cohort::cli::parse_time(as_of).unwrap()),
        ..Default::default()
    };
    cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();
    space
}

async fn api_space(space: cohort::spec::Space, token: &str, rate: u32) -> Arc<ApiSpace> {
    let a = Arc::new(ApiSpace::new(
        ServedSpace {
            space,
            token: token.into(),
        },
        rate,
    ));
    assert!(a.refresh().await.unwrap(), "the published run is indexed");
    a
}

fn basic(token: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{token}:"))
    )
}

/// GET `uri` with `token` (none: no Authorization header): status, Request-Id, JSON body.
async fn get(app: &axum::Router, uri: &str, token: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", basic(t));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let rid = resp
        .headers()
        .get("request-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, rid, body)
}

const U1: &str = "/v1/spaces/shop/collections/users/profiles/user_id:u1";

#[tokio::test]
async fn every_endpoint_on_a_router_without_a_socket() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    let space = run_at(tmp.path(), "2026-11-02").await;
    let app = api::router(vec![api_space(space, "tok-shop", 0).await], None);

    // Traits: custom, computed and audience, sorted by key.
    let (s, rid, b) = get(&app, &format!("{U1}/traits"), Some("tok-shop")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(!rid.is_empty(), "a Request-Id header");
    assert_eq!(b["traits"]["name"], "Ada");
    assert_eq!(b["traits"]["plan"], "pro");
    assert_eq!(b["traits"]["orders"], 2);
    assert_eq!(b["traits"]["recent_buyers"], true);
    assert_eq!(b["cursor"]["has_more"], false);
    let keys: Vec<&String> = b["traits"].as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // The same profile by email: type lower-cased, value URL-decoded and lower-cased as
    // identity.yaml's default `email` rule says.
    let (s, _, b2) = get(
        &app,
        "/v1/spaces/shop/collections/users/profiles/EMAIL:ADA%40example.COM/traits",
        Some("tok-shop"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    assert_eq!(b2["traits"], b["traits"]);
    let (s, _, _) = get(
        &app,
        "/v1/spaces/shop/collections/users/profiles/anonymous_id:a1/traits",
        Some("tok-shop"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Pagination: two at a time, following `next` until done, gives every trait once.
    let mut seen = Vec::new();
    let mut uri = format!("{U1}/traits?limit=2");
    loop {
        let (s, _, page) = get(&app, &uri, Some("tok-shop")).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let n = page["traits"].as_object().unwrap().len();
        assert!(n <= 2);
        seen.extend(page["traits"].as_object().unwrap().keys().cloned());
        if page["cursor"]["has_more"] == false {
            assert_eq!(page["cursor"]["next"], "");
            break;
        }
        assert_eq!(n, 2);
        uri = page["cursor"]["url"].as_str().unwrap().to_string();
        assert!(uri.contains("limit=2"), "{uri}");
    }
    assert_eq!(
        seen,
        sorted.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );

    // include, class, verbose.
    let (_, _, b) = get(
        &app,
        &format!("{U1}/traits?include=plan,orders"),
        Some("tok-shop"),
    )
    .await;
    assert_eq!(b["traits"], serde_json::json!({"orders": 2, "plan": "pro"}));
    let (_, _, b) = get(
        &app,
        &format!("{U1}/traits?class=audience"),
        Some("tok-shop"),
    )
    .await;
    assert_eq!(b["traits"], serde_json::json!({"recent_buyers": true}));
    let (_, _, b) = get(
        &app,
        &format!("{U1}/traits?class=computed_trait"),
        Some("tok-shop"),
    )
    .await;
    assert_eq!(b["traits"], serde_json::json!({"orders": 2}));
    let (_, _, b) = get(
        &app,
        &format!("{U1}/traits?include=plan&verbose=true"),
        Some("tok-shop"),
    )
    .await;
    assert_eq!(b["traits"]["plan"]["value"], "pro");
    assert_eq!(b["traits"]["plan"]["class"], "custom_trait");

    // External ids.
    let (_, _, b) = get(&app, &format!("{U1}/external_ids"), Some("tok-shop")).await;
    let ids: Vec<String> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ids,
        ["anonymous_id:a1", "email:ada@example.com", "user_id:u1"]
    );
    assert_eq!(b["data"][0]["collection"], "users");
    assert_eq!(b["data"][0]["encoding"], "none");
    let (_, _, b) = get(
        &app,
        &format!("{U1}/external_ids?include=email"),
        Some("tok-shop"),
    )
    .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let (_, _, b) = get(
        &app,
        &format!("{U1}/external_ids?limit=1&next=1"),
        Some("tok-shop"),
    )
    .await;
    assert_eq!(b["data"][0]["type"], "email");
    assert_eq!(b["cursor"]["has_more"], true);
    assert_eq!(b["cursor"]["next"], "2");

    // Events of the last 14 days, newest first; filters; ascending.
    let (_, _, b) = get(&app, &format!("{U1}/events"), Some("tok-shop")).await;
    let mids: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(mids, ["m4", "m3", "m2", "m1"]);
    assert_eq!(b["data"][2]["event"], "Order Completed");
    assert_eq!(b["data"][2]["properties"]["revenue"], 30);
    assert_eq!(b["data"][2]["context"]["ip"], "10.0.0.1");
    assert_eq!(b["data"][3]["traits"]["plan"], "pro");
    let (_, _, b) = get(
        &app,
        &format!("{U1}/events?include=Order%20Completed&sort=asc"),
        Some("tok-shop"),
    )
    .await;
    let mids: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(mids, ["m2", "m3"]);
    // Bob's only event is two months old: outside the 14 days.
    let (s, _, b) = get(
        &app,
        "/v1/spaces/shop/collections/users/profiles/user_id:u2/events",
        Some("tok-shop"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"].as_array().unwrap().len(), 0);

    // Metadata and links, both ways.
    let (_, _, b) = get(&app, &format!("{U1}/metadata"), Some("tok-shop")).await;
    assert_eq!(
        b["metadata"]["first_message_at"],
        "2026-10-28T10:00:00.000Z"
    );
    assert_eq!(b["metadata"]["last_message_at"], "2026-10-30T11:00:00.000Z");
    let (_, _, b) = get(&app, &format!("{U1}/links"), Some("tok-shop")).await;
    assert_eq!(b["data"][0]["to_collection"], "accounts");
    assert_eq!(b["data"][0]["external_ids"][0]["type"], "group_id");
    assert_eq!(b["data"][0]["external_ids"][0]["id"], "acme");
    let acme = "/v1/spaces/shop/collections/accounts/profiles/group_id:acme";
    let (_, _, b) = get(&app, &format!("{acme}/links"), Some("tok-shop")).await;
    assert_eq!(b["data"][0]["to_collection"], "users");
    assert_eq!(b["data"][0]["external_ids"].as_array().unwrap().len(), 3);
    let (_, _, b) = get(&app, &format!("{acme}/traits"), Some("tok-shop")).await;
    assert_eq!(b["traits"]["name"], "Acme");

    // Runs.
    let (s, _, b) = get(&app, "/v1/spaces/shop/runs", Some("tok-shop")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"][0]["status"], "succeeded");
}

#[tokio::test]
async fn errors_auth_isolation_and_rate_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (dev, prod) = (tmp.path().join("dev"), tmp.path().join("prod"));
    write_shop(&dev, "dev");
    write_shop(&prod, "prod");
    let dev = run_at(&dev, "2026-11-02").await;
    let prod = run_at(&prod, "2026-11-02").await;
    let app = api::router(
        vec![
            api_space(dev, "tok-dev", 0).await,
            api_space(prod, "tok-prod", 3).await,
        ],
        None,
    );
    let dev_u1 = "/v1/spaces/dev/collections/users/profiles/user_id:u1/traits";
    let prod_u1 = "/v1/spaces/prod/collections/users/profiles/user_id:u1/traits";

    let (s, rid1, b) = get(&app, dev_u1, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"]["code"], "unauthorized");
    let (s, rid2, b) = get(&app, dev_u1, Some("wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_ne!(rid1, rid2, "each request has its own Request-Id");
    // One space's token does not open another.
    let (s, _, b) = get(&app, dev_u1, Some("tok-prod")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(
        b["error"]["message"],
        "the token is not valid for this space"
    );
    let (s, _, b) = get(
        &app,
        "/v1/spaces/nope/collections/users/profiles/user_id:u1/traits",
        Some("tok-dev"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "not_found");

    let (s, _, b) = get(
        &app,
        "/v1/spaces/dev/collections/users/profiles/user_id:nobody/traits",
        Some("tok-dev"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        b,
        serde_json::json!({"error": {"code": "not_found", "message": "profile `user_id:nobody` not found"}})
    );
    for (uri, code) in [
        (format!("{dev_u1}?limit=201"), StatusCode::BAD_REQUEST),
        (format!("{dev_u1}?limit=0"), StatusCode::BAD_REQUEST),
        (format!("{dev_u1}?class=trait"), StatusCode::BAD_REQUEST),
        (
            "/v1/spaces/dev/collections/users/profiles/u1/traits".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/spaces/dev/collections/groups/profiles/user_id:u1/traits".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/spaces/dev/collections/users/profiles/user_id:u1/secrets".into(),
            StatusCode::NOT_FOUND,
        ),
        ("/v2/elsewhere".into(), StatusCode::NOT_FOUND),
    ] {
        let (s, _, b) = get(&app, &uri, Some("tok-dev")).await;
        assert_eq!(s, code, "{uri}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{uri}: {b}"
        );
    }
    let (s, _, b) = get(&app, &format!("{dev_u1}?limit=200"), Some("tok-dev")).await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // prod allows 3 requests a second: the fourth in a burst waits.
    for _ in 0..3 {
        let (s, _, _) = get(&app, prod_u1, Some("tok-prod")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let resp = app
        .clone()
        .oneshot(
            Request::get(prod_u1)
                .header("authorization", basic("tok-prod"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    // dev has no limit and its own bucket.
    let (s, _, _) = get(&app, dev_u1, Some("tok-dev")).await;
    assert_eq!(s, StatusCode::OK);
}

/// Counts the runs the API asked for.
struct Asked(Mutex<Vec<String>>);
impl RunTrigger for Asked {
    fn trigger(&self, space: &str) -> bool {
        self.0.lock().unwrap().push(space.to_string());
        true
    }
}

#[tokio::test]
async fn post_runs_queues_a_run_and_the_openapi_document_matches_the_routes() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    let space = run_at(tmp.path(), "2026-11-02").await;
    let asked = Arc::new(Asked(Mutex::new(Vec::new())));
    let app = api::router(
        vec![api_space(space, "tok-shop", 0).await],
        Some(asked.clone()),
    );
    let post = |token: &'static str| {
        Request::post("/v1/spaces/shop/runs")
            .header("authorization", basic(token))
            .body(Body::empty())
            .unwrap()
    };
    let r = app.clone().oneshot(post("bad")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(asked.0.lock().unwrap().is_empty());
    let r = app.clone().oneshot(post("tok-shop")).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(*asked.0.lock().unwrap(), ["shop"]);

    // Every documented path answers for a known profile (no "no such endpoint"), and the
    // responses carry the properties the document says are required.
    let (s, _, doc) = get(&app, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 7);
    for (path, ops) in paths {
        if !ops.as_object().unwrap().contains_key("get") {
            continue;
        }
        let uri = path
            .replace("{space}", "shop")
            .replace("{collection}", "users")
            .replace("{id}", "user_id:u1");
        let (s, _, body) = get(&app, &uri, Some("tok-shop")).await;
        if path.ends_with("/live") {
            // This space collects nothing, so nothing is live (tests/it/live.rs has one that
            // does).
            assert_eq!(s, StatusCode::NOT_FOUND, "{uri}: {body}");
            continue;
        }
        assert_eq!(s, StatusCode::OK, "{uri}: {body}");
        let schema = &ops["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        for req in schema["required"].as_array().unwrap() {
            let key = req.as_str().unwrap();
            assert!(body.get(key).is_some(), "{uri} lacks `{key}`: {body}");
        }
    }
}

#[tokio::test]
async fn over_a_real_port_a_new_run_is_served_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    let space = run_at(tmp.path(), "2026-11-02").await;
    let a = api_space(space, "tok-shop", 0).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(vec![a.clone()], None);
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{U1}/traits?class=audience");
    let r = client
        .get(&url)
        .basic_auth("tok-shop", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("request-id"));
    let b: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(b["traits"]["recent_buyers"], true);

    // A later run: Ada's orders are older than 7 days, so she exits; the trait stays `false`.
    run_at(tmp.path(), "2026-11-20").await;
    assert!(a.refresh().await.unwrap());
    let text = client
        .get(&url)
        .basic_auth("tok-shop", Some(""))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let b: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(b["traits"]["recent_buyers"], false);
    assert!(!a.refresh().await.unwrap(), "nothing new to index");

    let r = client
        .get(format!(
            "http://{addr}/v1/spaces/shop/collections/users/profiles/user_id:zz/traits"
        ))
        .basic_auth("tok-shop", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let b: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(b["error"]["code"], "not_found");
    server.abort();
}

/// `(request line, expected JSON)` pairs: each ```http block and the ```json block after it.
fn doc_examples(markdown: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let lang = line.trim();
        if lang != "```http" && lang != "```json" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        if lang == "```http" {
            pending = Some(body.join("\n"));
        } else if let Some(req) = pending.take() {
            out.push((req, serde_json::from_str(&body.join("\n")).unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn the_examples_in_the_docs_are_what_the_api_answers() {
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profile-api.md"))
            .unwrap();
    let examples = doc_examples(&md);
    assert_eq!(examples.len(), 2);
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    let space = run_at(tmp.path(), "2026-11-02").await;
    let app = api::router(vec![api_space(space, "tok-shop", 0).await], None);
    for (req, expected) in examples {
        let uri = req.strip_prefix("GET ").unwrap().trim();
        let (s, _, body) = get(&app, uri, Some("tok-shop")).await;
        assert_eq!(s, StatusCode::OK, "{uri}");
        assert_eq!(body, expected, "{uri}");
    }
}

#[test]
fn the_openapi_document_is_valid_openapi() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let out = std::process::Command::new(crate::common::python())
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('ok')",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
