//! Shared helpers for the integration tests: temp spaces, sample data, the binary, Python.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cohort::generate::{GenerateOptions, GenerateReport};
use cohort::spec::{Preset, Space};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

/// The `cohort` binary built for these tests.
pub fn cohort_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cohort"))
}

/// The interop venv's Python (deltalake, duckdb, pyarrow), set up by `.ci/test`.
pub fn python() -> String {
    std::env::var("COHORT_PYTHON").expect(
        "COHORT_PYTHON is not set: run the tests with `bash .ci/test`, which creates the \
         interop venv (deltalake, duckdb, moto) and exports it",
    )
}

/// Runs the Python `script` (the interop venv's) with `args`, off the async runtime; the JSON
/// it prints. Fails the test with its output when it fails.
pub async fn python_json(script: String, args: Vec<String>) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .arg("-c")
            .arg(&script)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// The npm packages `.ci/node` installs (for NODE_PATH), set up by `.ci/test`.
pub fn node_modules() -> String {
    std::env::var("COHORT_NODE_MODULES")
        .expect("COHORT_NODE_MODULES is not set: run the tests with `bash .ci/test`")
}

/// The generator's default end: runs as of this time see every generated event.
pub fn gen_end() -> DateTime<Utc> {
    GenerateOptions::default().end
}

/// Writes a space.yaml with the given sources `(name, preset, url)` and output.
pub fn write_space(dir: &Path, name: &str, sources: &[(&str, &str, &str)], output: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let mut y = format!("name: {name}\nspec_version: 1\nsources:\n");
    for (n, p, u) in sources {
        y.push_str(&format!("  - name: {n}\n    preset: {p}\n    url: {u}\n"));
    }
    y.push_str(&format!("output: {output}\n"));
    std::fs::write(dir.join("space.yaml"), y).unwrap();
}

/// Loads a space, failing the test with the rendered diagnostics when it is invalid.
pub async fn load(dir: &Path) -> Space {
    let v = cohort::analyze::validate_space(dir).await;
    match v.space {
        Some(s) => s,
        None => panic!(
            "space {} is invalid:\n{}",
            dir.display(),
            v.diagnostics
                .iter()
                .map(|d| d.render(dir))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Generates sample data into a local folder.
pub async fn generate(preset: Preset, events: u64, seed: u64, out: &Path) -> GenerateReport {
    let opts = GenerateOptions {
        preset,
        events,
        seed,
        ..Default::default()
    };
    let loc = cohort::store::objects::open_raw(Path::new("/"), out.to_str().unwrap()).unwrap();
    cohort::generate::generate(&opts, &loc, &|_| {})
        .await
        .unwrap()
}

/// Writes rows of text columns (None = null) as one Parquet file.
pub fn write_text_parquet(path: &Path, columns: &[&str], rows: &[Vec<Option<&str>>]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i]).collect::<Vec<Option<&str>>>(),
            )) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The columns of the `events` preset.
pub use cohort::spec::preset::EVENTS_COLUMNS as EVENT_COLUMNS;

/// Runs `sql` on `ctx` and returns the result as a pretty-printed table.
pub async fn query_text(ctx: &datafusion::prelude::SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// Rows of a query as `|`-joined text cells (`NULL` for nulls), in the order it gives them.
pub async fn text_rows(ctx: &datafusion::prelude::SessionContext, sql: &str) -> Vec<String> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8)
                    .unwrap()
            })
            .collect();
        for i in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| {
                        if c.is_null(i) {
                            "NULL".to_string()
                        } else {
                            c.as_string::<i32>().value(i).to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}
