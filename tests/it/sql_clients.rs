//! The client matrix of docs/sql-endpoint.md, each client started for real against `cohort
//! serve` as a user starts it (TLS offered, SCRAM-SHA-256): psycopg 3 (prepared statements,
//! a rollback after auto-prepare, named cursors, `COPY`), psycopg2, asyncpg, pg8000,
//! node-postgres, psql's `\dt`, `\d`, `\d+`, `\l`, `\df`, SQLAlchemy's reflection and pandas'
//! `read_sql_table`, connectorx and polars (binary `COPY … TO STDOUT`), ADBC and JDBC;
//! `current_database()` is the space.

use std::process::{Command, Stdio};

use crate::common::{node_modules, python};
use crate::profile_api::{run_at, write_shop};
use crate::serve::{Server, serve_in};

const PYTHON_CLIENTS: &str = r#"
import asyncio, json, sys, time
port = int(sys.argv[1])
out = {}
DSN = dict(host="127.0.0.1", port=port, dbname="shop", user="bi", password="tok-shop")
COUNT = "select count(*) from profiles"

import psycopg
deadline = time.time() + 60
while True:
    try:
        psycopg.connect(**DSN).close()
        break
    except psycopg.OperationalError:
        if time.time() > deadline:
            raise
        time.sleep(0.2)

# psycopg 3: server-side prepared statements (prepare=True), then auto-prepare and rollback
# (psycopg sends DEALLOCATE ALL after it).
with psycopg.connect(**DSN, prepare_threshold=0) as c:
    prepared = [c.execute("select id_type from identities where id_value = %s",
                          ("ada@example.com",), prepare=True).fetchall() for _ in range(3)]
    out["psycopg_prepared"] = [sorted(r[0] for r in rows) for rows in prepared]
    c.rollback()
    out["psycopg_after_rollback"] = c.execute(COUNT).fetchone()[0]
    out["current_database"] = c.execute("select current_database()").fetchone()[0]

import psycopg2
with psycopg2.connect(**DSN) as c:
    with c.cursor() as cur:
        cur.execute("select id_type from identities where id_value = %s", ("ada@example.com",))
        out["psycopg2"] = sorted(r[0] for r in cur.fetchall())
        cur.execute(COUNT)
        out["psycopg2_count"] = cur.fetchone()[0]

import asyncpg
async def with_asyncpg():
    c = await asyncpg.connect(**{("database" if k == "dbname" else k): v for k, v in DSN.items()})
    try:
        rows = await c.fetch("select id_type from identities where id_value = $1", "ada@example.com")
        out["asyncpg"] = sorted(r["id_type"] for r in rows)
        out["asyncpg_count"] = await c.fetchval(COUNT)
    finally:
        await c.close()
asyncio.run(with_asyncpg())

import pg8000.native
c = pg8000.native.Connection(user="bi", password="tok-shop", host="127.0.0.1", port=port,
                             database="shop")
out["pg8000"] = sorted(r[0] for r in c.run(
    "select id_type from identities where id_value = :v", v="ada@example.com"))
out["pg8000_count"] = c.run(COUNT)[0][0]
c.close()
print(json.dumps(out))
"#;

const NODE_CLIENT: &str = r#"
const { Client } = require("pg");
(async () => {
  const c = new Client({ host: "127.0.0.1", port: Number(process.argv[2]), database: "shop",
                         user: "bi", password: "tok-shop" });
  await c.connect();
  const r = await c.query("select id_type from identities where id_value = $1", ["ada@example.com"]);
  const n = await c.query("select count(*) as n from profiles");
  await c.end();
  console.log(JSON.stringify({ ids: r.rows.map((x) => x.id_type).sort(), count: String(n.rows[0].n) }));
})().catch((e) => { console.error(e); process.exit(1); });
"#;

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The shop space, run once and served (TLS offered, SCRAM) from its parent folder: the
/// folder, the SQL port and the server.
async fn shop_served() -> (tempfile::TempDir, String, Server) {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(&tmp.path().join("shop"), "shop");
    run_at(&tmp.path().join("shop"), "2026-11-02").await;
    let flags = ["shop", "--token", "shop=tok-shop"];
    let (sql, server) = serve_in(tmp.path(), &flags, Stdio::null());
    (tmp, sql.to_string(), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_matrix_connects_and_reads() {
    let (tmp, port, _server) = shop_served().await;
    let dir = tmp.path().to_path_buf();
    let (py, node, psql) = tokio::task::spawn_blocking(move || {
        let py = output(Command::new(python()).args(["-c", PYTHON_CLIENTS, &port]));
        let script = dir.join("client.js");
        std::fs::write(&script, NODE_CLIENT).unwrap();
        let node = output(
            Command::new("node")
                .arg(&script)
                .arg(&port)
                .env("NODE_PATH", node_modules()),
        );
        let psql = output(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "bi",
                    "-d",
                    "shop",
                    "-X",
                ])
                .args([
                    "-c",
                    "\\dt",
                    "-c",
                    "\\d profiles",
                    "-c",
                    "\\l",
                    "-c",
                    "\\df",
                    "-c",
                    "\\d+ profiles",
                ])
                .env("PGPASSWORD", "tok-shop"),
        );
        (py, node, psql)
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(py.trim()).unwrap();
    let ids = serde_json::json!(["email"]);
    let expected = serde_json::json!({
        "psycopg_prepared": [ids, ids, ids],
        "psycopg_after_rollback": 2,
        "current_database": "shop",
        "psycopg2": ids,
        "psycopg2_count": 2,
        "asyncpg": ids,
        "asyncpg_count": 2,
        "pg8000": ids,
        "pg8000_count": 2,
    });
    assert_eq!(v, expected);
    let n: serde_json::Value = serde_json::from_str(node.trim()).unwrap();
    assert_eq!(n, serde_json::json!({"ids": ids, "count": "2"}));
    for table in ["profiles", "audience_membership", "identities"] {
        assert!(psql.contains(&format!("| {table} ")), "\\dt: {psql}");
    }
    assert!(psql.contains("Table \"public.profiles\""), "\\d: {psql}");
    assert!(psql.contains("List of databases"), "\\l: {psql}");
    assert!(
        psql.lines().any(|l| l.starts_with(" shop ")),
        "\\l lists the space: {psql}"
    );
    assert!(psql.contains("List of functions"), "\\df: {psql}");
    let d_plus = psql.split("Table \"public.profiles\"").nth(2).unwrap_or("");
    assert!(
        d_plus.contains("Storage") && d_plus.contains("profile_id"),
        "\\d+ profiles: {psql}"
    );
}

/// SQLAlchemy's reflection (and with it pandas' `read_sql_table`, Superset's column lists),
/// psycopg's named cursors, `information_schema`'s type names, `COPY … TO STDOUT` through
/// connectorx, polars and psycopg, ADBC, and JDBC's metadata calls.
const REFLECTION: &str = include_str!("sql_reflection.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_cursors_copies_and_drivers() {
    let (_tmp, port, _server) = shop_served().await;
    let (py, java) = tokio::task::spawn_blocking(move || {
        let py = output(Command::new(python()).args(["-c", REFLECTION, &port]));
        let java = output(Command::new("java").args([
            "-cp",
            "/usr/share/java/postgresql.jar",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/Jdbc.java"),
            &port,
        ]));
        (py, java)
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(py.trim()).unwrap();
    let columns = &v["columns"];
    assert_eq!(columns["id_type"], "TEXT", "{v:#}");
    assert_eq!(columns["id_value"], "TEXT", "{v:#}");
    let schema = v["information_schema"].as_array().unwrap();
    assert!(
        schema.contains(&serde_json::json!(["id_type", "text", "text"])),
        "{v:#}"
    );
    let rows = v["identities_rows"].as_i64().unwrap();
    assert!(rows >= 2, "{v:#}");
    for (key, expected) in [
        ("schemas", serde_json::json!(["public"])),
        (
            "pk",
            serde_json::json!({"constrained_columns": [], "name": null}),
        ),
        ("indexes", serde_json::json!([])),
        ("unique", serde_json::json!([])),
        ("autoload", serde_json::json!(["email"])),
        ("read_sql_table", serde_json::json!(2)),
        (
            "named_description",
            serde_json::json!(["id_type", "id_value"]),
        ),
        (
            "named_first",
            serde_json::json!(["email", "ada@example.com"]),
        ),
        ("named_rest", serde_json::json!([])),
        ("named_count", serde_json::json!(2)),
        ("connectorx_rows", serde_json::json!(rows)),
        ("polars", serde_json::json!(2)),
        ("copy_csv", serde_json::json!("id_type\nemail\n")),
        ("adbc", serde_json::json!(2)),
    ] {
        assert_eq!(v[key], expected, "{key}: {v:#}");
    }
    let j: serde_json::Value = serde_json::from_str(java.trim()).unwrap();
    let tables = j["tables"].as_array().unwrap();
    for table in ["profiles", "identities", "audience_membership"] {
        assert!(tables.contains(&serde_json::json!(table)), "{j:#}");
    }
    let columns = j["columns"].as_array().unwrap();
    assert!(
        columns.contains(&serde_json::json!("id_type:text")),
        "{j:#}"
    );
    assert_eq!(j["primary_keys"], serde_json::json!([]), "{j:#}");
    assert_eq!(j["ids"], serde_json::json!(["email"]), "{j:#}");
}
