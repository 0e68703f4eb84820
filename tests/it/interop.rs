//! Published tables read back by Python `deltalake` and DuckDB (from the interop venv), at
//! the versions the manifest names.

use std::process::Command;

use cohort::run::{self, Quiet, RunOptions};
use cohort::spec::Preset;

use crate::common::{gen_end, generate, load, python, write_space};

const READER: &str = r#"
import json, sys
import deltalake, duckdb
root = sys.argv[1]
m = json.load(open(root + "/_cohort/manifest.json"))
out = {"run_id": m["run_id"], "tables": {}}
con = duckdb.connect()
for name, version in sorted(m["tables"].items()):
    t = deltalake.DeltaTable(root + "/" + name, version=version)
    ds = t.to_pyarrow_dataset()
    con.register("t_" + name, ds)
    out["tables"][name] = {
        "pandas_rows": len(t.to_pandas()),
        "duckdb_rows": con.execute("select count(*) from t_" + name).fetchall()[0][0],
        "columns": [f.name for f in ds.schema],
    }
last = con.execute("select run_id, status, events, bad_events, duplicates from t_runs order by started_at desc limit 1").fetchall()[0]
out["last_run"] = {"run_id": last[0], "status": last[1], "events": last[2], "bad_events": last[3], "duplicates": last[4]}
out["reasons"] = dict(con.execute("select reason, count(*) from t_event_errors group by reason").fetchall())
print(json.dumps(out))
"#;

#[tokio::test]
async fn python_deltalake_and_duckdb_read_published_tables() {
    let tmp = tempfile::tempdir().unwrap();
    generate(Preset::Events, 20_000, 3, &tmp.path().join("data")).await;
    write_space(
        tmp.path(),
        "interop",
        &[("web", "events", "./data")],
        "./out",
    );
    let space = load(tmp.path()).await;
    let opts = RunOptions {
        as_of: Some(gen_end()),
        ..Default::default()
    };
    let first = run::run(&space, &opts, &Quiet).await.unwrap().record;
    let r = run::run(&space, &opts, &Quiet).await.unwrap().record;
    // The second run read no new file: the rows set aside are the first run's.
    assert_eq!(r.ingest.mode, "incremental");
    assert_eq!((r.rows_read, r.bad_events), (0, 0));

    let root = tmp.path().join("out/interop");
    let out = Command::new(python())
        .arg("-c")
        .arg(READER)
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run_id"], r.run_id.as_str());
    assert_eq!(v["last_run"]["run_id"], r.run_id.as_str());
    assert_eq!(v["last_run"]["status"], "succeeded");
    assert_eq!(v["last_run"]["events"], r.events);
    assert_eq!(v["last_run"]["bad_events"], r.bad_events);
    assert_eq!(v["last_run"]["duplicates"], r.duplicates);
    // Two runs: the history holds both.
    assert_eq!(v["tables"]["runs"]["pandas_rows"], 2);
    assert_eq!(v["tables"]["runs"]["duckdb_rows"], 2);
    let errors = &v["tables"]["event_errors"];
    assert_eq!(errors["pandas_rows"], first.bad_events);
    assert_eq!(errors["duckdb_rows"], first.bad_events);
    for (reason, n) in &first.errors_by_reason {
        assert_eq!(v["reasons"][reason], *n, "reason {reason}");
    }
    // The event history, partitioned by day, reads as one table outside Cohort too.
    let events = &v["tables"]["events"];
    assert_eq!(events["pandas_rows"], r.events);
    assert_eq!(events["duckdb_rows"], r.events);
    let cols: Vec<String> = serde_json::from_value(events["columns"].clone()).unwrap();
    for c in ["profile_id", "message_id", "timestamp", "properties", "dt"] {
        assert!(cols.iter().any(|x| x == c), "events lacks {c}: {cols:?}");
    }
    let cols: Vec<String> = serde_json::from_value(errors["columns"].clone()).unwrap();
    for c in ["run_id", "source", "message_id", "reason", "detail"] {
        assert!(
            cols.iter().any(|x| x == c),
            "event_errors lacks {c}: {cols:?}"
        );
    }
}
