//! End-to-end `.slt` cases: run a space on hand-written events, then check its tables and the
//! event view with SQL (sqllogictest format, files under tests/slt/).

use std::path::Path;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

use crate::common::{EVENT_COLUMNS, load, write_space, write_text_parquet};

struct Db {
    ctx: SessionContext,
}

#[async_trait::async_trait]
impl AsyncDB for Db {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let df = self.ctx.sql(sql).await?;
        let width = df.schema().fields().len();
        let batches: Vec<RecordBatch> = df.collect().await?;
        let mut rows = Vec::new();
        let opts = FormatOptions::default().with_null("NULL");
        for b in &batches {
            let fmts: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<Result<_, _>>()?;
            for r in 0..b.num_rows() {
                rows.push(
                    fmts.iter()
                        .zip(b.columns())
                        .map(|(f, c)| {
                            if c.is_null(r) {
                                "NULL".to_string()
                            } else {
                                let s = f.value(r).to_string();
                                if s.is_empty() { "(empty)".into() } else { s }
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

async fn run_slt(ctx: SessionContext, file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/slt")
        .join(file);
    let mut runner = sqllogictest::Runner::new(move || {
        let ctx = ctx.clone();
        async move { Ok::<_, DataFusionError>(Db { ctx }) }
    });
    if let Err(e) = runner.run_file_async(&path).await {
        panic!("{}: {e}", path.display());
    }
}

/// A space over hand-written events covering every bad-row reason, a duplicate, a late event
/// and an event after as_of.
fn events_fixture(dir: &Path) {
    let part = |dt: &str| dir.join(format!("data/events/dt={dt}/part-00000.parquet"));
    let r = |v: [Option<&'static str>; 11]| v.to_vec();
    write_text_parquet(
        &part("2026-10-01"),
        &EVENT_COLUMNS,
        &[
            r([
                Some("m1"),
                Some("identify"),
                None,
                Some("u1"),
                Some("a1"),
                None,
                None,
                Some("2026-10-01T10:00:00Z"),
                None,
                Some(r#"{"email":"U1@X.COM"}"#),
                Some(r#"{"device":{"id":"d1"}}"#),
            ]),
            r([
                Some("m2"),
                Some("track"),
                Some("Order Completed"),
                None,
                Some("a1"),
                None,
                None,
                Some("2026-10-01T11:00:00Z"),
                Some(r#"{"revenue":120.5}"#),
                None,
                None,
            ]),
            r([
                Some("m2"),
                Some("track"),
                Some("Order Completed"),
                None,
                Some("a1"),
                None,
                None,
                Some("2026-10-01T11:00:05Z"),
                Some(r#"{"revenue":999}"#),
                None,
                None,
            ]),
            r([
                Some("m3"),
                Some("page"),
                Some("Home"),
                None,
                Some("a2"),
                None,
                None,
                Some("2026-10-01T12:00:00Z"),
                Some(r#"{"path":"/"}"#),
                None,
                None,
            ]),
            r([
                Some("m4"),
                Some("bogus"),
                None,
                Some("u1"),
                None,
                None,
                None,
                Some("2026-10-01T12:00:00Z"),
                None,
                None,
                None,
            ]),
            r([
                Some("m5"),
                Some("track"),
                Some("X"),
                Some("u1"),
                None,
                None,
                None,
                Some("not-a-date"),
                None,
                None,
                None,
            ]),
            r([
                Some("m6"),
                Some("track"),
                Some("X"),
                Some("u1"),
                None,
                None,
                None,
                Some("2026-10-01T13:00:00Z"),
                Some(r#"{"revenue": "#),
                None,
                None,
            ]),
            r([
                Some("m7"),
                Some("track"),
                Some("X"),
                None,
                None,
                None,
                None,
                Some("2026-10-01T13:00:00Z"),
                None,
                None,
                None,
            ]),
            r([
                None,
                Some("track"),
                Some("X"),
                Some("u1"),
                None,
                None,
                None,
                Some("2026-10-01T13:00:00Z"),
                None,
                None,
                None,
            ]),
            r([
                Some("m13"),
                Some("TRACK"),
                Some("Signed In"),
                Some("  "),
                Some(" a3 "),
                None,
                None,
                Some("2026-10-01T14:00:00.250Z"),
                None,
                None,
                None,
            ]),
        ],
    );
    write_text_parquet(
        &part("2026-10-02"),
        &EVENT_COLUMNS,
        &[
            r([
                Some("m8"),
                Some("screen"),
                Some("Cart"),
                Some("u1"),
                None,
                None,
                None,
                Some("2026-10-02T09:00:00Z"),
                None,
                None,
                None,
            ]),
            r([
                Some("m9"),
                Some("group"),
                None,
                Some("u1"),
                None,
                Some("g1"),
                None,
                Some("2026-10-02T09:30:00Z"),
                None,
                Some(r#"{"name":"Acme"}"#),
                None,
            ]),
            r([
                Some("m10"),
                Some("alias"),
                None,
                Some("u1"),
                None,
                None,
                Some("a2"),
                Some("2026-10-02T10:00:00Z"),
                None,
                None,
                None,
            ]),
            r([
                Some("m11"),
                Some("track"),
                Some("Product Viewed"),
                None,
                Some("a1"),
                None,
                None,
                Some("2026-09-28T08:00:00Z"),
                Some(r#"{"product_id":"p1"}"#),
                None,
                None,
            ]),
        ],
    );
    write_text_parquet(
        &part("2026-10-03"),
        &EVENT_COLUMNS,
        &[r([
            Some("m12"),
            Some("track"),
            Some("Order Completed"),
            Some("u1"),
            None,
            None,
            None,
            Some("2026-10-03T00:00:01Z"),
            None,
            None,
            None,
        ])],
    );
    write_space(
        dir,
        "fixture",
        &[("web", "events", "./data/events")],
        "./out",
    );
}

/// Runs the space in `dir` as of `as_of` and opens a session over what it published.
async fn run_at(
    dir: &std::path::Path,
    as_of: &str,
) -> (
    cohort::run::record::RunRecord,
    datafusion::prelude::SessionContext,
) {
    let space = load(dir).await;
    let as_of = cohort::cli::parse_time(as_of).unwrap();
    let opts = cohort::run::RunOptions {
        as_of: Some(as_of),
        ..Default::default()
    };
    let report = cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();
    let ctx = cohort::read::query_session(&space, as_of).await.unwrap();
    (report.record, ctx)
}

#[tokio::test]
async fn events_stage_slt() {
    let tmp = tempfile::tempdir().unwrap();
    events_fixture(tmp.path());
    let (record, ctx) = run_at(tmp.path(), "2026-10-03T00:00:00Z").await;
    assert_eq!(record.events, 8);
    run_slt(ctx, "events_stage.slt").await;
}

/// A space whose identity.yaml uses every kind of identifier source and rule: external ids,
/// a context path, a property, a SQL normalization, custom blocked values and patterns, and
/// malformed values (too long, control characters).
fn identity_fixture(dir: &Path) {
    std::fs::write(
        dir.join("identity.yaml"),
        r#"identifiers:
  - { type: user_id, priority: 1, limit: 1 }
  - { type: email, priority: 2, limit: 5, normalize: [lowercase] }
  - { type: crm_id, from: [context.externalIds], priority: 3, limit: 1 }
  - { type: phone, from: [traits.phone, properties.phone], priority: 4, limit: 2, normalize: ["regexp_replace(value, '[^0-9+]', '', 'g')"] }
  - { type: device_id, from: [context.device.id], priority: 5, limit: 2 }
  - { type: anonymous_id, priority: 6, limit: 5 }
blocked:
  values: [guest]
  patterns: ["^test-"]
"#,
    )
    .unwrap();
    let long = "x".repeat(1001);
    let long: &str = Box::leak(long.into_boxed_str());
    let t = |d: u32, h: u32| -> Option<&'static str> {
        Some(Box::leak(
            format!("2026-10-{d:02}T{h:02}:00:00Z").into_boxed_str(),
        ))
    };
    #[rustfmt::skip]
    let rows: Vec<Vec<Option<&str>>> = vec![
        // message_id, type, event, user_id, anonymous_id, group_id, previous_id, timestamp, properties, traits, context
        vec![Some("i1"), Some("identify"), None, Some("u1"), Some("a1"), None, None, t(1, 9), None,
             Some(r#"{"email":" U1@Example.COM ","phone":"+1 (555) 010-0001"}"#),
             Some(r#"{"externalIds":[{"id":"crm-1","type":"crm_id","collection":"users","encoding":"none"},{"id":"zzz","type":"other"}],"device":{"id":"dev-1"}}"#)],
        vec![Some("i2"), Some("track"), Some("Called"), None, Some("a2"), None, None, t(1, 10),
             Some(r#"{"phone":"+15550100001"}"#), None, None],
        vec![Some("i3"), Some("track"), Some("Opened"), None, Some("guest"), None, None, t(1, 11), None, None, Some(r#"{"device":{"id":"test-rig-4"}}"#)],
        vec![Some("i4"), Some("track"), Some("Opened"), None, Some(long), None, None, t(1, 12), None, None, None],
        vec![Some("i5"), Some("track"), Some("Opened"), None, Some("bad\u{7}id"), None, None, t(1, 13), None, None, None],
        vec![Some("i6"), Some("track"), Some("Opened"), Some("u2"), Some("a6"), None, None, t(2, 9), None, None, Some(r#"{"externalIds":[{"id":"crm-1","type":"crm_id"}]}"#)],
    ];
    write_text_parquet(
        &dir.join("data/events/dt=2026-10-01/part-0.parquet"),
        &EVENT_COLUMNS,
        &rows,
    );
    write_space(dir, "ids", &[("web", "events", "./data/events")], "./out");
}

#[tokio::test]
async fn identity_stage_slt() {
    let tmp = tempfile::tempdir().unwrap();
    identity_fixture(tmp.path());
    let (_, ctx) = run_at(tmp.path(), "2026-10-03T00:00:00Z").await;
    run_slt(ctx, "identity_stage.slt").await;
}

/// A space made of a folder under tests/slt/: the events of its events.jsonl (one JSON object
/// a line, keys = the `events` preset's columns, properties / traits / context as nested
/// objects) written as one Parquet file per day of their timestamp, and its definitions
/// (traits/, audiences/ and queries/, when present).
pub fn jsonl_fixture(dir: &Path, folder: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/slt")
        .join(folder);
    let text = std::fs::read_to_string(root.join("events.jsonl")).unwrap();
    let mut days: std::collections::BTreeMap<String, Vec<Vec<Option<String>>>> = Default::default();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("events.jsonl line {}: {e}", n + 1));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("events.jsonl line {}: not an object", n + 1));
        for k in obj.keys() {
            assert!(
                EVENT_COLUMNS.contains(&k.as_str()),
                "events.jsonl line {}: unknown column {k}",
                n + 1
            );
        }
        let row: Vec<Option<String>> = EVENT_COLUMNS
            .iter()
            .map(|c| match obj.get(*c) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            })
            .collect();
        let ts = row[7].as_deref().expect("every event has a timestamp");
        days.entry(ts[..10].to_string()).or_default().push(row);
    }
    for (day, rows) in &days {
        let rows: Vec<Vec<Option<&str>>> = rows
            .iter()
            .map(|r| r.iter().map(|c| c.as_deref()).collect())
            .collect();
        write_text_parquet(
            &dir.join(format!("data/events/dt={day}/part-00000.parquet")),
            &EVENT_COLUMNS,
            &rows,
        );
    }
    for sub in ["traits", "audiences", "queries"] {
        let Ok(entries) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in entries {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml" || e == "sql") {
                std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    write_space(dir, folder, &[("web", "events", "./data/events")], "./out");
}

#[tokio::test]
async fn traits_slt() {
    let tmp = tempfile::tempdir().unwrap();
    jsonl_fixture(tmp.path(), "traits");
    let (_, ctx) = run_at(tmp.path(), "2026-10-31T00:00:00Z").await;
    let mut failures = Vec::new();
    for file in [
        "traits/count.slt",
        "traits/sum_avg.slt",
        "traits/min_max.slt",
        "traits/mode.slt",
        "traits/first_last.slt",
        "traits/unique.slt",
        "traits/custom_traits.slt",
        "traits/accounts.slt",
    ] {
        failures.extend(run_slt_all(ctx.clone(), file).await);
    }
    assert!(
        failures.is_empty(),
        "{} failing records:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every .slt file of tests/slt/audiences, over the space of that folder run once as of
/// 2026-10-31T00:00:00Z.
#[tokio::test]
async fn audiences_slt() {
    let tmp = tempfile::tempdir().unwrap();
    jsonl_fixture(tmp.path(), "audiences");
    let (_, ctx) = run_at(tmp.path(), "2026-10-31T00:00:00Z").await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt/audiences");
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the audience .slt files: {files:?}");
    let mut failures = Vec::new();
    for f in files {
        failures.extend(run_slt_all(ctx.clone(), &format!("audiences/{f}")).await);
    }
    assert!(
        failures.is_empty(),
        "{} failing records:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Runs every record of an .slt file, going on after a failure, and returns the failures
/// (so one run of a test shows every wrong value, not only the first).
async fn run_slt_all(ctx: SessionContext, file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/slt")
        .join(file);
    let records = match sqllogictest::parse_file::<DefaultColumnType>(&path) {
        Ok(r) => r,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    let mut runner = sqllogictest::Runner::new(move || {
        let ctx = ctx.clone();
        async move { Ok::<_, DataFusionError>(Db { ctx }) }
    });
    let mut failures = Vec::new();
    for record in records {
        if let Err(e) = runner.run_async(record).await {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    failures
}
