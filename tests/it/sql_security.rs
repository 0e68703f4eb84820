//! Who may connect to `cohort serve`'s SQL endpoint, and how, with the real clients: by
//! default TLS with a self-signed certificate (psql and psycopg with `sslmode=require`) and
//! SCRAM-SHA-256 (libpq's `require_auth` refuses anything else); a certificate given with
//! `--sql-tls-cert/--sql-tls-key` that `sslmode=verify-full` accepts; cleartext passwords only
//! with `--sql-passwords cleartext`; no TLS with `--sql-no-tls`. An unknown database answers
//! exactly as a wrong token does, failed logins are logged and each further one answered
//! later, and a CancelRequest works over TLS.

use std::path::Path;

use crate::common::python_json;
use crate::profile_api::{run_at, write_shop};
use crate::serve::{Server, serve_in};

/// Serves the space `shop` in `dir` with `flags`, logging to `log`; its port and the server.
fn serve(dir: &Path, flags: &[&str], log: &str) -> (u16, Server) {
    let args = [&["shop", "--token", "shop=tok-shop"], flags].concat();
    let log = std::fs::File::create(dir.join(log)).unwrap();
    serve_in(dir, &args, log.into())
}

/// `try_connect(**params)`: "ok ssl=<bool>" with the connection's `select 42`, or the
/// SQLSTATE and message of the failure; waits for the server to listen.
const PRELUDE: &str = r#"
import json, sys, threading, time
import psycopg
port = int(sys.argv[1])
out = {}
def try_connect(**kw):
    params = dict(host="127.0.0.1", port=port, dbname="shop", user="bi", password="tok-shop",
                  connect_timeout=10)
    params.update(kw)
    start = time.time()
    try:
        with psycopg.connect(**params) as c:
            c.execute("select 42").fetchone()
            return "ok ssl=%s" % c.pgconn.ssl_in_use
    except psycopg.OperationalError as e:
        return "error: " + str(e).strip().split("\n")[-1]
    finally:
        out.setdefault("_times", []).append(round(time.time() - start, 2))
deadline = time.time() + 60
while try_connect(sslmode="disable").startswith("error") and time.time() < deadline:
    time.sleep(0.2)
out.pop("_times", None)
"#;

const DEFAULTS: &str = r#"
out["require_tls"] = try_connect(sslmode="require")
out["plain"] = try_connect(sslmode="disable")
out["scram_only"] = try_connect(sslmode="require", require_auth="scram-sha-256")
out["cleartext_refused"] = try_connect(sslmode="require", require_auth="password")
out["direct_tls"] = try_connect(sslmode="require", sslnegotiation="direct")
out.pop("_times", None)
out["wrong_token"] = try_connect(sslmode="require", password="guess")
out["unknown_db"] = try_connect(sslmode="require", dbname="nosuch", password="tok-shop")
out["third_failure"] = try_connect(sslmode="require", password="guess2")
out["failure_s"] = out.pop("_times")
out["after_failures"] = try_connect(sslmode="require")
# A CancelRequest over TLS.
c = psycopg.connect(host="127.0.0.1", port=port, dbname="shop", user="bi", password="tok-shop",
                    sslmode="require", autocommit=True)
threading.Timer(1.0, c.cancel_safe).start()
try:
    c.execute("select count(*) from range(200000) a cross join range(200000) b").fetchall()
    out["cancel"] = "finished"
except psycopg.Error as e:
    out["cancel"] = e.sqlstate
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_scram_by_default_and_the_same_answer_for_unknown_spaces() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(&tmp.path().join("shop"), "shop");
    run_at(&tmp.path().join("shop"), "2026-11-02").await;
    let (port, server) = serve(tmp.path(), &[], "serve.log");
    let script = format!("{PRELUDE}{DEFAULTS}");
    let v = python_json(script, vec![port.to_string()]).await;
    drop(server);
    assert_eq!(v["require_tls"], "ok ssl=True", "{v}");
    assert_eq!(v["plain"], "ok ssl=False", "{v}");
    assert_eq!(v["scram_only"], "ok ssl=True", "{v}");
    assert_eq!(v["direct_tls"], "ok ssl=True", "{v}");
    let refused = v["cleartext_refused"].as_str().unwrap();
    assert!(refused.contains("SASL"), "libpq refuses: {refused}");
    // Nothing tells a space that does not exist from a wrong token.
    let wrong = v["wrong_token"].as_str().unwrap();
    assert!(
        wrong
            .to_lowercase()
            .contains("password authentication failed"),
        "{wrong}"
    );
    assert_eq!(v["unknown_db"], wrong, "{v}");
    assert_eq!(v["third_failure"], wrong, "{v}");
    let times: Vec<f64> = v["failure_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    assert!(
        times[0] >= 0.25 && times[2] >= 1.0,
        "later each time: {times:?}"
    );
    assert_eq!(v["after_failures"], "ok ssl=True", "{v}");
    assert_eq!(v["cancel"], "57014", "{v}");
    let log = std::fs::read_to_string(tmp.path().join("serve.log")).unwrap();
    assert!(
        log.contains("TLS with a self-signed certificate, SCRAM-SHA-256 passwords"),
        "{log}"
    );
    assert!(
        log.contains("SQL login to database \"nosuch\" from 127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("SQL login to database \"shop\""), "{log}");
}

const OPTIONS: &str = r#"
cert = sys.argv[2]
out["verify_full"] = try_connect(host="localhost", sslmode="verify-full", sslrootcert=cert)
out["cleartext"] = try_connect(sslmode="require", require_auth="password")
print(json.dumps(out))
"#;

const NO_TLS: &str = r#"
out["require_tls"] = try_connect(sslmode="require")
out["plain"] = try_connect(sslmode="disable", require_auth="scram-sha-256")
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_certificate_cleartext_when_asked_and_no_tls() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(&tmp.path().join("shop"), "shop");
    run_at(&tmp.path().join("shop"), "2026-11-02").await;
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(tmp.path().join("server.crt"), pair.cert.pem()).unwrap();
    std::fs::write(
        tmp.path().join("server.key"),
        pair.signing_key.serialize_pem(),
    )
    .unwrap();
    let (port, _server) = serve(
        tmp.path(),
        &[
            "--sql-tls-cert",
            "server.crt",
            "--sql-tls-key",
            "server.key",
            "--sql-passwords",
            "cleartext",
        ],
        "given.log",
    );
    let cert = tmp.path().join("server.crt").display().to_string();
    let script = format!("{PRELUDE}{OPTIONS}");
    let v = python_json(script, vec![port.to_string(), cert]).await;
    assert_eq!(v["verify_full"], "ok ssl=True", "{v}");
    assert_eq!(v["cleartext"], "ok ssl=True", "{v}");

    let (port, _server) = serve(tmp.path(), &["--sql-no-tls"], "plain.log");
    let script = format!("{PRELUDE}{NO_TLS}");
    let v = python_json(script, vec![port.to_string()]).await;
    let refused = v["require_tls"].as_str().unwrap();
    assert!(refused.starts_with("error"), "{v}");
    assert_eq!(v["plain"], "ok ssl=False", "{v}");
}
