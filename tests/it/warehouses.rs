//! The scripts for the warehouses that cannot run here (`cohort compile --script --dialect
//! databricks`, `snowflake`, `bigquery`) parse in sqlglot's grammar of that warehouse, every
//! statement of both example spaces (`sql_parse.py`), and call no function that neither the
//! warehouse nor the script defines. The Spark script, which also runs here (`spark.rs`), is
//! parsed as well, so a statement sqlglot cannot read is caught on both sides. The JavaScript
//! functions of the Snowflake and BigQuery scripts run in Node (`warehouse_js.rs`).

use std::path::Path;
use std::process::Command;

use cohort::spec::Preset;

use super::common;
use super::space_sql::{cohort, copy_space};

const PARSE: &str = include_str!("sql_parse.py");

/// `space` compiled in each of `dialects` (Cohort's name, sqlglot's) parses in sqlglot.
async fn parses(space: &str, dialects: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("space");
    copy_space(&Path::new(env!("CARGO_MANIFEST_DIR")).join(space), &dir);
    common::generate(Preset::Events, 2_000, 17, &dir.join("data/events")).await;
    let tool = tmp.path().join("sql_parse.py");
    std::fs::write(&tool, PARSE).unwrap();
    let as_of = common::gen_end().to_rfc3339();
    for (ours, theirs) in dialects {
        let d = dir.to_str().unwrap();
        let args = [
            "compile",
            d,
            "--dialect",
            ours,
            "--script",
            "--as-of",
            &as_of,
        ];
        let script = tmp.path().join(format!("{ours}.sql"));
        std::fs::write(&script, cohort(&args)).unwrap();
        let o = Command::new(common::python())
            .arg(&tool)
            .arg(theirs)
            .arg(&script)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{space} in {ours}: sqlglot cannot parse it:\n{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let n: usize = out
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            n > 100,
            "{space} in {ours}: only {n} statements parsed:\n{out}"
        );
    }
}

const DIALECTS: [(&str, &str); 4] = [
    ("databricks", "databricks"),
    ("spark", "spark"),
    ("snowflake", "snowflake"),
    ("bigquery", "bigquery"),
];

#[tokio::test]
async fn the_store_space_parses_in_the_warehouse_dialects() {
    parses("examples/spaces/store", &DIALECTS).await;
}

#[tokio::test]
async fn the_bench_space_parses_in_the_warehouse_dialects() {
    parses("benches/space", &DIALECTS).await;
}
