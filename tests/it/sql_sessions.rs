//! The SQL endpoint keeps each connection's settings to itself: one psycopg connection's `SET`
//! of DataFusion options, time zone or `statement_timeout` changes nothing for another open
//! connection or a new one, and `RESET` (one name, or `ALL`; in the simple and the extended
//! protocol) takes the connection back to the space's defaults.

use crate::profile_api::{run_at, write_shop};
use crate::sql_endpoint::{psql, shop_clients, start};

const SESSIONS: &str = r#"
import json, sys
import psycopg
port = int(sys.argv[1])
out = {}
def connect():
    return psycopg.connect(host="127.0.0.1", port=port, dbname="shop", user="bi",
                           password="tok-shop", autocommit=True)
def one(c, sql):
    try:
        return str(c.execute(sql).fetchone()[0])
    except Exception as e:
        return "error"
TABLES = "select count(*) from information_schema.tables where table_name = 'profiles'"
def setting(name):
    return "select value from information_schema.df_settings where name = '%s'" % name
ZONE = setting("datafusion.execution.time_zone")
a, b = connect(), connect()
out["a_before"] = one(a, TABLES)
a.execute("SET datafusion.catalog.information_schema = false")
a.execute("SET datafusion.execution.time_zone = '+05:00'")
a.execute("SET statement_timeout = '3s'")
out["a_set"] = one(a, TABLES)
out["b_open"] = one(b, TABLES)
out["b_zone"] = one(b, ZONE)
out["b_timeout"] = one(b, "SHOW statement_timeout")
out["a_timeout"] = one(a, "SHOW statement_timeout")
c = connect()
out["c_new"] = one(c, TABLES)
out["c_info"] = one(c, setting("datafusion.catalog.information_schema"))
a.execute("RESET datafusion.catalog.information_schema")
out["a_reset_one"] = one(a, TABLES)
out["a_zone_kept"] = one(a, ZONE)
a.execute("RESET ALL")
out["a_zone_reset"] = one(a, ZONE)
out["a_timeout_reset"] = one(a, "SHOW statement_timeout")
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_keeps_its_settings_and_resets_them() {
    let v = shop_clients(SESSIONS).await;
    let default_zone = v["b_zone"].as_str().unwrap().to_string();
    assert_ne!(default_zone, "+05:00", "{v}");
    let expected = serde_json::json!({
        "a_before": "1",
        "a_set": "error",
        "b_open": "1",
        "b_zone": default_zone,
        "b_timeout": "0",
        "a_timeout": "3000ms",
        "c_new": "1",
        "c_info": "true",
        "a_reset_one": "1",
        "a_zone_kept": "+05:00",
        "a_zone_reset": default_zone,
        "a_timeout_reset": "0",
    });
    assert_eq!(v, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_runs_in_a_simple_query_of_several_statements() {
    let tmp = tempfile::tempdir().unwrap();
    write_shop(tmp.path(), "shop");
    run_at(tmp.path(), "2026-11-02").await;
    let port = start(&[("shop", tmp.path(), "tok-shop")]).await;
    // The simple protocol: psql sends the statements as one query (and prints each one's
    // result).
    let out = psql(
        port,
        "shop",
        "tok-shop",
        "SET datafusion.catalog.information_schema = false; RESET ALL; \
         select count(*) from information_schema.tables where table_name = 'profiles'",
    )
    .await;
    let last = out.as_deref().ok().and_then(|o| o.lines().last());
    assert_eq!(last, Some("1"), "{out:?}");
}
