//! The SQL endpoint with real clients: psql, psycopg 3 and SQLAlchemy over two served spaces.
//! Checks values against what the runs published, password and isolation failures, refused
//! writes, the catalog queries the clients send, a new run seen without a restart, and an
//! integer sum that overflows failing instead of wrapping around.

use std::path::Path;
use std::process::Command;

use cohort::serve::ServedSpace;

use crate::common::{load, python_json};
use crate::profile_api::{run_at, write_shop};

/// Starts the endpoint over `spaces` (name, folder, token); returns its port.
pub(crate) async fn start(spaces: &[(&str, &Path, &str)]) -> u16 {
    let mut served = Vec::new();
    for (_, dir, token) in spaces {
        served.push(ServedSpace {
            space: load(dir).await,
            token: token.to_string(),
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(cohort::serve::sql::serve_sql(
        listener,
        served,
        cohort::serve::sql::SqlOptions::default(),
    ));
    port
}

/// psql's unaligned, tuples-only output of `sql`, or its error text.
pub(crate) async fn psql(port: u16, db: &str, password: &str, sql: &str) -> Result<String, String> {
    let (port, db, password, sql) = (
        port.to_string(),
        db.to_string(),
        password.to_string(),
        sql.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "analyst", "-d", &db])
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", &sql])
            .env("PGPASSWORD", &password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql is installed (`.ci/run` installs postgresql-client)");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reads_each_space_with_its_token_and_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (dev, prod) = (tmp.path().join("dev"), tmp.path().join("prod"));
    write_shop(&dev, "dev");
    write_shop(&prod, "prod");
    run_at(&dev, "2026-11-02").await;
    run_at(&prod, "2026-11-02").await;
    let port = start(&[("dev", &dev, "tok-dev"), ("prod", &prod, "tok-prod")]).await;

    assert_eq!(
        psql(port, "dev", "tok-dev", "select count(*) from profiles")
            .await
            .unwrap(),
        "2"
    );
    assert_eq!(
        psql(
            port,
            "dev",
            "tok-dev",
            "select audience_key || ':' || entity_type from audience_membership"
        )
        .await
        .unwrap(),
        "recent_buyers:users"
    );
    assert_eq!(
        psql(
            port,
            "dev",
            "tok-dev",
            "select count(*) from events where type = 'track'"
        )
        .await
        .unwrap(),
        "2",
        "the normalized event view"
    );
    // psql's \dt lists the published tables through pg_catalog.
    let dt = psql(port, "dev", "tok-dev", "\\dt").await.unwrap();
    for t in [
        "profiles",
        "identities",
        "audience_membership",
        "audience_changes",
        "runs",
        "accounts",
    ] {
        assert!(dt.contains(&format!("|{t}|")), "\\dt lacks {t}:\n{dt}");
    }
    let tables = psql(
        port,
        "dev",
        "tok-dev",
        "select count(*) from information_schema.tables where table_name = 'profiles'",
    )
    .await
    .unwrap();
    assert_eq!(tables, "1");

    // Wrong password, another space's token, an unknown space.
    let e = psql(port, "dev", "wrong", "select 1").await.unwrap_err();
    assert!(e.contains("assword"), "{e}");
    let e = psql(port, "dev", "tok-prod", "select 1").await.unwrap_err();
    assert!(e.contains("assword"), "{e}");
    // An unknown space fails as a wrong token does: space names cannot be found by trying.
    let e = psql(port, "staging", "tok-dev", "select 1")
        .await
        .unwrap_err();
    assert!(
        e.contains("Password authentication failed for user \"analyst\""),
        "{e}"
    );

    // Reads only.
    for w in [
        "create table t (a int)",
        "insert into profiles (profile_id) values ('x')",
        "drop table runs",
        "copy (select 1) to '/tmp/cohort-copy-test.csv'",
    ] {
        let e = psql(port, "dev", "tok-dev", w).await.unwrap_err();
        assert!(e.contains("read-only"), "{w}: {e}");
    }
    assert!(!Path::new("/tmp/cohort-copy-test.csv").exists());

    // A new run of prod shows up without a restart; dev is untouched.
    run_at(&prod, "2026-11-20").await;
    assert_eq!(
        psql(port, "prod", "tok-prod", "select count(*) from runs")
            .await
            .unwrap(),
        "2"
    );
    assert_eq!(
        psql(
            port,
            "prod",
            "tok-prod",
            "select count(*) from audience_membership"
        )
        .await
        .unwrap(),
        "0",
        "Ada's orders are older than 7 days now"
    );
    assert_eq!(
        psql(port, "dev", "tok-dev", "select count(*) from runs")
            .await
            .unwrap(),
        "1"
    );
}

/// Serves the shop space (one run) and runs the Python `script` against it (its first
/// argument is the port); the JSON it prints.
pub(crate) async fn shop_clients(script: &'static str) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    run_at(tmp.path(), "2026-11-02").await;
    let port = start(&[("shop", tmp.path(), "tok-shop")]).await;
    python_json(script.to_string(), vec![port.to_string()]).await
}

const CLIENTS: &str = r#"
import json, sys
port = int(sys.argv[1])
out = {}

import psycopg
with psycopg.connect(host="127.0.0.1", port=port, dbname="shop", user="bi", password="tok-shop") as conn:
    with conn.cursor() as cur:
        cur.execute("select count(*) from profiles")
        out["psycopg_profiles"] = cur.fetchone()[0]
        # The extended protocol, with a parameter.
        cur.execute("select id_type from identities where id_value = %s", ("ada@example.com",))
        out["psycopg_param"] = [r[0] for r in cur.fetchall()]
        cur.execute("select audience_key from audience_membership")
        out["psycopg_members"] = [r[0] for r in cur.fetchall()]

import sqlalchemy as sa
import pandas as pd
engine = sa.create_engine(f"postgresql+psycopg://bi:tok-shop@127.0.0.1:{port}/shop")
insp = sa.inspect(engine)
out["sa_tables"] = sorted(insp.get_table_names())
with engine.connect() as c:
    out["sa_profile_columns"] = [r[0] for r in c.execute(sa.text(
        "select column_name from information_schema.columns where table_name = 'profiles'"))]
    out["sa_orders"] = c.execute(sa.text("select orders from profiles where user_id = :u"), {"u": "u1"}).scalar()
    df = pd.read_sql(sa.text("select run_id, status from runs"), c)
    out["pandas_runs"] = df["status"].tolist()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_sqlalchemy_and_pandas_read_the_published_tables() {
    let v = shop_clients(CLIENTS).await;
    assert_eq!(v["psycopg_profiles"], 2);
    assert_eq!(v["psycopg_param"], serde_json::json!(["email"]));
    assert_eq!(v["psycopg_members"], serde_json::json!(["recent_buyers"]));
    let tables: Vec<&str> = v["sa_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "profiles",
        "identities",
        "audience_membership",
        "audience_changes",
        "runs",
        "accounts",
    ] {
        assert!(tables.contains(&t), "SQLAlchemy sees {tables:?}");
    }
    let cols = v["sa_profile_columns"].as_array().unwrap();
    assert!(cols.iter().any(|c| c == "orders"), "{cols:?}");
    assert_eq!(v["sa_orders"], 2);
    assert_eq!(v["pandas_runs"], serde_json::json!(["succeeded"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integer_sum_that_overflows_is_an_error_not_a_wrap_around() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    run_at(tmp.path(), "2026-11-02").await;
    let port = start(&[("shop", tmp.path(), "tok-shop")]).await;
    let over = "select sum(v) from (values (9223372036854775807), (1)) as t(v)";
    let e = psql(port, "shop", "tok-shop", over).await.unwrap_err();
    assert!(e.contains("out of range"), "{e}");
    let fits = "select sum(orders) >= 2, count(*) from profiles";
    assert_eq!(
        psql(port, "shop", "tok-shop", fits).await.as_deref(),
        Ok("t|2")
    );
}
