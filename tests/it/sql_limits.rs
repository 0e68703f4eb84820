//! `cohort serve`'s limits on SQL statements, as a team meets them: the binary serves two
//! spaces with a default `statement_timeout`, one place per space for running queries and a
//! small memory limit, and psycopg and psql check that a runaway cross join is stopped by the
//! timeout, by a CancelRequest and by its client being killed (which frees the space's place
//! for the next query), that waiting for a place counts against the timeout while the other
//! space answers (its queries compute on threads of their own), and that a query over the
//! memory limit fails with SQLSTATE 53200.

use std::process::Stdio;

use crate::common::python_json;
use crate::profile_api::{run_at, write_shop};
use crate::serve::serve_in;

const LIMITS: &str = r#"
import json, subprocess, sys, threading, time
import psycopg
port = int(sys.argv[1])
out = {}
def connect(db="shop"):
    deadline = time.time() + 60
    while True:
        try:
            return psycopg.connect(host="127.0.0.1", port=port, dbname=db, user="bi",
                                   password="tok-" + db, autocommit=True)
        except psycopg.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
RUNAWAY = "select count(*) from range(200000) a cross join range(200000) b"
def attempt(c, sql):
    start = time.time()
    try:
        c.execute(sql).fetchall()
        return {"ok": True, "s": round(time.time() - start, 2)}
    except psycopg.Error as e:
        return {"code": e.sqlstate, "message": str(e).strip(), "s": round(time.time() - start, 2)}

a = connect()
out["default_timeout"] = a.execute("SHOW statement_timeout").fetchone()[0]
out["timeout"] = attempt(a, RUNAWAY)

# A CancelRequest from another thread; the connection goes on.
a.execute("SET statement_timeout = 0")
threading.Timer(1.0, a.cancel).start()
out["cancel"] = attempt(a, RUNAWAY)
out["after_cancel"] = a.execute("select 41 + 1").fetchone()[0]

# A psql whose query runs with no timeout is killed: the query stops and frees the place.
psql = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "bi", "-d", "shop",
                         "-X", "-c", "SET statement_timeout = 0", "-c", RUNAWAY],
                        env={"PGPASSWORD": "tok-shop", "PATH": "/usr/bin:/bin"},
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)
psql.kill()
psql.wait()
b = connect()
out["after_kill"] = attempt(b, "select count(*) from profiles")

# While a query holds the space's one place, the next waits (within its timeout), and the
# other space answers.
holder = connect()
holder.execute("SET statement_timeout = '6s'")
held = threading.Thread(target=lambda: attempt(holder, RUNAWAY))
held.start()
time.sleep(1.0)
out["waiting"] = attempt(b, "select count(*) from profiles")
out["other_space"] = attempt(connect("other"), "select count(*) from profiles")
held.join()

# Over the memory limit.
a.execute("SET statement_timeout = '60s'")
# A hash join's build side cannot spill: 3 M hashes do not fit in 64 MB.
out["memory"] = attempt(a, "select count(*) from range(3000000) a join range(3000000) b "
                           "on md5(cast(a.value as varchar)) = md5(cast(b.value as varchar))")
print(json.dumps(out))
sys.stdout.flush()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_runaway_queries_and_keeps_spaces_apart() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["shop", "other"] {
        write_shop(&tmp.path().join(name), name);
        run_at(&tmp.path().join(name), "2026-11-02").await;
    }
    let flags = [
        "shop",
        "other",
        "--token",
        "shop=tok-shop",
        "--token",
        "other=tok-other",
        "--sql-statement-timeout",
        "2s",
        "--sql-max-queries",
        "1",
        "--sql-memory-limit",
        "64MB",
    ];
    let (sql, _server) = serve_in(tmp.path(), &flags, Stdio::null());
    let v = python_json(LIMITS.to_string(), vec![sql.to_string()]).await;
    let secs = |k: &str| v[k]["s"].as_f64().unwrap();

    assert_eq!(v["default_timeout"], "2000ms", "{v}");
    // The cross join of 4·10¹⁰ rows would take minutes; each stop ends it in seconds.
    assert_eq!(v["timeout"]["code"], "57014", "{v}");
    assert!(
        v["timeout"]["message"]
            .as_str()
            .unwrap()
            .contains("statement timeout")
    );
    assert!((1.9..10.0).contains(&secs("timeout")), "{v}");
    assert_eq!(v["cancel"]["code"], "57014", "{v}");
    assert!(
        v["cancel"]["message"]
            .as_str()
            .unwrap()
            .contains("user request")
    );
    assert!(secs("cancel") < 10.0, "{v}");
    assert_eq!(v["after_cancel"], 42);
    // Had the killed client's query gone on, it would hold the one place and this would time
    // out waiting for it.
    assert_eq!(v["after_kill"]["ok"], true, "{v}");
    assert_eq!(v["waiting"]["code"], "57014", "{v}");
    assert!(secs("waiting") >= 1.9, "{v}");
    assert_eq!(v["other_space"]["ok"], true, "{v}");
    assert!(secs("other_space") < 1.0, "{v}");
    assert_eq!(v["memory"]["code"], "53200", "{v}");
    assert!(
        v["memory"]["message"]
            .as_str()
            .unwrap()
            .contains("--sql-memory-limit"),
        "{v}"
    );
}
