//! Every error of the Profile API over a real socket, as `cohort serve` answers it: whether the
//! handler, axum (a method the route does not take, a path that is not UTF-8) or hyper (a
//! request it cannot parse, too many headers) produced it, the answer is JSON in Segment's
//! shape with a `Request-Id`, and bad input is never a 500. Requests are written byte for byte
//! on a TCP stream, so malformed ones reach the server as a misbehaving client sends them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::cohort_bin;
use crate::profile_api::{run_at, write_shop};
use crate::serve::{Server, free_port};

/// One answer: status, headers (names lower-cased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks Segment's error shape and the Request-Id; returns `error.code` and
    /// `error.message`.
    fn error(&self, what: &str) -> (String, String) {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{what}: {} {text}",
            self.status
        );
        assert!(
            self.header("request-id").is_some_and(|v| !v.is_empty()),
            "{what}: no Request-Id in {:?}",
            self.headers
        );
        let v: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {text}"));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 1, "{what}: only `error`: {v}");
        let (code, message) = (&v["error"]["code"], &v["error"]["message"]);
        assert!(code.as_str().is_some_and(|c| !c.is_empty()), "{what}: {v}");
        assert!(
            message.as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
        assert_eq!(v["error"].as_object().unwrap().len(), 2, "{what}: {v}");
        (
            code.as_str().unwrap().to_string(),
            message.as_str().unwrap().to_string(),
        )
    }
}

/// Writes `request` as it is, reads until the server closes.
async fn send(port: u16, request: &[u8]) -> Answer {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// A request with the space's token that asks the server to close afterwards.
fn request(method: &str, target: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!("{method} ").into_bytes();
    r.extend_from_slice(target);
    r.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic dG9rLXNob3A6\r\n{extra}\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    r
}

async fn get(port: u16, target: &str) -> Answer {
    send(port, &request("GET", target.as_bytes(), "")).await
}

const U1: &str = "/v1/spaces/shop/collections/users/profiles/user_id:u1";

#[tokio::test]
async fn every_error_is_json_with_a_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    run_at(tmp.path(), "2026-11-02").await;
    let (port, sql) = (free_port(), free_port());
    let _server = Server(
        Command::new(cohort_bin())
            .arg("serve")
            .arg(tmp.path())
            .args(["--api-addr", &format!("127.0.0.1:{port}")])
            .args(["--sql-addr", &format!("127.0.0.1:{sql}")])
            .args(["--token", "shop=tok-shop", "--no-schedule"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the server starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ok = get(port, &format!("{U1}/traits?limit=1")).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let first: Value = serde_json::from_slice(&ok.body).unwrap();
    let cursor = first["cursor"]["next"].as_str().unwrap().to_string();
    assert_eq!(cursor, "name");

    let mut ids = std::collections::BTreeSet::new();
    let mut check = |what: &str, a: &Answer, status: u16, code: &str| -> String {
        assert_eq!(
            a.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let (got, message) = a.error(what);
        assert_eq!(got, code, "{what}: {message}");
        assert!(
            ids.insert(a.header("request-id").unwrap().to_string()),
            "{what}: each answer has its own Request-Id"
        );
        message
    };

    // The handlers' own errors, and the query string.
    let a = get(port, &format!("{U1}/traits?limit=2&limit=3")).await;
    let m = check("a repeated limit", &a, 400, "bad_request");
    assert!(m.contains("`limit` is given more than once"), "{m}");
    let a = get(port, &format!("{U1}/events?sort=asc&sort=desc")).await;
    check("a repeated sort", &a, 400, "bad_request");
    let a = get(port, &format!("{U1}/traits?limit=%FF")).await;
    check("a limit that is not UTF-8", &a, 400, "bad_request");
    let a = get(port, "/v1/spaces/shop/runs?limit=1&limit=1").await;
    check("a repeated limit on runs", &a, 400, "bad_request");

    // Cursors: the traits cursor is a trait key of the profile, the others an offset.
    let a = get(port, &format!("{U1}/traits?next=no-such-trait")).await;
    let m = check("a made-up traits cursor", &a, 400, "bad_request");
    assert!(
        m.contains("`next` cursor `no-such-trait` is not valid"),
        "{m}"
    );
    for endpoint in ["external_ids", "events", "links"] {
        let a = get(port, &format!("{U1}/{endpoint}?next=abc")).await;
        let m = check(endpoint, &a, 400, "bad_request");
        assert!(m.contains("`next` cursor `abc` is not valid"), "{m}");
    }
    let a = get(
        port,
        &format!("{U1}/external_ids?next=18446744073709551615"),
    )
    .await;
    assert_eq!(a.status, 200, "a cursor past the end is an empty page");
    let a = get(port, &format!("{U1}/traits?limit=1&next={cursor}")).await;
    assert_eq!(a.status, 200, "the cursor handed out still works");
    let page: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(page["traits"].as_object().unwrap().len(), 1, "{page}");
    assert!(page["traits"].get("name").is_none(), "{page}");

    // axum: a path that is not UTF-8 once decoded, methods the routes do not take, no route.
    let a = get(
        port,
        "/v1/spaces/shop/collections/users/profiles/user_id:%FF%FE/traits",
    )
    .await;
    let m = check("a path that is not UTF-8", &a, 400, "bad_request");
    assert!(m.contains("not valid UTF-8"), "{m}");
    let a = get(port, "/v1/spaces/%C0/runs").await;
    check("a space name that is not UTF-8", &a, 400, "bad_request");
    let a = send(
        port,
        &request("POST", format!("{U1}/traits").as_bytes(), ""),
    )
    .await;
    let m = check("POST on traits", &a, 405, "method_not_allowed");
    assert!(
        a.header("allow").is_some_and(|v| v.contains("GET")),
        "{:?}",
        a.headers
    );
    assert!(m.contains("POST"), "{m}");
    let a = send(port, &request("DELETE", b"/v1/spaces/shop/runs", "")).await;
    check("DELETE on runs", &a, 405, "method_not_allowed");
    let a = send(port, &request("PUT", b"/v1/openapi.json", "")).await;
    check("PUT on the OpenAPI document", &a, 405, "method_not_allowed");
    let a = get(port, "/v1/nowhere").await;
    check("an unknown route", &a, 404, "not_found");
    let a = get(port, &format!("{U1}/traits/extra")).await;
    check("a route one segment too long", &a, 404, "not_found");

    // hyper: requests it cannot parse never reach the router.
    let a = send(port, &request("GET", b"/v1/spaces/shop/\xff\xfe/runs", "")).await;
    check(
        "a raw byte that is not ASCII in the path",
        &a,
        400,
        "bad_request",
    );
    let a = send(port, b"NOT HTTP AT ALL\r\n\r\n").await;
    check("a request line that is not HTTP", &a, 400, "bad_request");
    let a = send(
        port,
        &request("GET", b"/v1/openapi.json", "Bad Header Name: x\r\n"),
    )
    .await;
    check("a header name with spaces", &a, 400, "bad_request");
    let many: String = (0..120).map(|i| format!("X-Pad-{i}: {i}\r\n")).collect();
    let a = send(
        port,
        &request("GET", format!("{U1}/traits").as_bytes(), &many),
    )
    .await;
    check(
        "more headers than allowed",
        &a,
        431,
        "request_header_fields_too_large",
    );

    // The server still answers after all of that.
    let a = get(port, &format!("{U1}/traits")).await;
    assert_eq!(a.status, 200);
    assert!(a.header("request-id").is_some());
}
