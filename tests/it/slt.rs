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

#[tokio::test]
async fn events_stage_slt() {
    let tmp = tempfile::tempdir().unwrap();
    events_fixture(tmp.path());
    let space = load(tmp.path()).await;
    let as_of = cohort::cli::parse_time("2026-10-03T00:00:00Z").unwrap();
    let opts = cohort::engine::RunOptions {
        as_of: Some(as_of),
        ..Default::default()
    };
    let report = cohort::engine::run(&space, &opts, &cohort::engine::Quiet)
        .await
        .unwrap();
    assert_eq!(report.record.events, 8);
    let ctx = cohort::engine::query_session(&space, as_of).await.unwrap();
    run_slt(ctx, "events_stage.slt").await;
}
