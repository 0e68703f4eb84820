//! The identity stage inside real runs: incremental runs equal a full rebuild, a rules change
//! forces a rebuild that the run record explains, and `cohort explain identity` output.

use std::path::Path;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use cohort::read;
use cohort::run::{self, Quiet, RunOptions};
use cohort::spec::Preset;

use crate::common::{
    EVENT_COLUMNS, cohort_bin, gen_end, generate, load, write_space, write_text_parquet,
};

async fn table_rows(space: &cohort::spec::Space, table: &str, columns: &str) -> Vec<String> {
    let ctx = datafusion::prelude::SessionContext::new();
    let t = read::published_table(space, table).await.unwrap().unwrap();
    ctx.register_table("t", t).unwrap();
    let batches = ctx
        .sql(&format!("SELECT {columns} FROM t ORDER BY {columns}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    text.lines().map(str::to_string).collect()
}

async fn run_at(dir: &Path, as_of: chrono::DateTime<Utc>) -> cohort::identity::IdentityStats {
    let space = load(dir).await;
    let opts = RunOptions {
        as_of: Some(as_of),
        ..Default::default()
    };
    let report = run::run(&space, &opts, &Quiet).await.unwrap();
    report.record.identity.unwrap()
}

#[tokio::test]
async fn incremental_runs_equal_a_full_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(Preset::Events, 30_000, 11, &data).await;
    // Two profiles that a later batch joins: a visitor (early) and a customer (later), linked
    // by a login after the second cut.
    let end = gen_end();
    let at = |days: i64| (end - Duration::days(days)).to_rfc3339();
    let (t1, t2, t3) = (at(200), at(150), at(10));
    let row = |m: &'static str, u: Option<&'static str>, a: &'static str, t: &str| {
        let t: &'static str = Box::leak(t.to_string().into_boxed_str());
        vec![
            Some(m),
            Some("track"),
            Some("Visited"),
            u,
            Some(a),
            None,
            None,
            Some(t),
            None,
            None,
            None,
        ]
    };
    write_text_parquet(
        &data.join("dt=2026-01-01/merge-case.parquet"),
        &EVENT_COLUMNS,
        &[
            row("mc-1", None, "visitor-anon", &t1),
            row("mc-2", Some("customer-9"), "customer-anon", &t2),
            row("mc-3", Some("customer-9"), "visitor-anon", &t3),
        ],
    );
    let inc = tmp.path().join("inc");
    let full = tmp.path().join("full");
    let url = data.to_str().unwrap();
    write_space(&inc, "inc", &[("web", "events", url)], "./out");
    write_space(&full, "full", &[("web", "events", url)], "./out");

    // Three appended batches: each run sees the events up to a later as-of time.
    let cuts = [end - Duration::days(120), end - Duration::days(40), end];
    let first = run_at(&inc, cuts[0]).await;
    assert_eq!(first.mode, "full");
    assert_eq!(first.reason.as_deref(), Some("no previous run"));
    let mut merges = 0;
    for cut in &cuts[1..] {
        let s = run_at(&inc, *cut).await;
        assert_eq!(s.mode, "incremental", "{s:?}");
        assert!(
            s.changed_events.is_some_and(|n| n > 0)
                && s.affected_identifiers.is_some_and(|n| n < s.identifiers),
            "an incremental run resolves again only what its events reach: {s:?}"
        );
        merges += s.merges;
    }
    let rebuilt = run_at(&full, end).await;
    assert_eq!(rebuilt.mode, "full");

    let (a, b) = (load(&inc).await, load(&full).await);
    let cols = "profile_id, id_type, id_value, first_seen, last_seen";
    let ia = table_rows(&a, "identities", cols).await;
    assert!(ia.len() > 1000, "{} identity rows", ia.len());
    assert_eq!(ia, table_rows(&b, "identities", cols).await);
    let cols = "message_id, id_type, id_value, rule, profile_id";
    assert_eq!(
        table_rows(&a, "identity_violations", cols).await,
        table_rows(&b, "identity_violations", cols).await
    );
    // Profiles that the later batches joined were recorded as merges.
    let merged = table_rows(&a, "profile_merges", "merged_profile_id, profile_id").await;
    assert_eq!(merged.len() as u64, merges + 4, "{merged:#?}"); // + table borders
    assert!(merges > 0, "the later batches should merge some profiles");

    // A rules change forces a full rebuild, and the record says why.
    std::fs::write(
        inc.join("identity.yaml"),
        "identifiers:\n  - { type: user_id, priority: 1, limit: 1 }\n  - { type: anonymous_id, priority: 2, limit: 3 }\n",
    )
    .unwrap();
    let s = run_at(&inc, end).await;
    assert_eq!(s.mode, "full");
    assert_eq!(s.reason.as_deref(), Some("the identity rules changed"));
}

/// A small hand-written history for the explain snapshots.
fn explain_space(dir: &Path) {
    let cols = [
        "message_id",
        "type",
        "event",
        "user_id",
        "anonymous_id",
        "timestamp",
        "traits",
        "context",
    ];
    let t = |d: u32, h: u32| {
        Utc.with_ymd_and_hms(2026, 10, d, h, 0, 0)
            .unwrap()
            .to_rfc3339()
    };
    let times: Vec<String> = (0..8).map(|i| t(1 + i, 9)).collect();
    let rows: Vec<Vec<Option<&str>>> = vec![
        // A visitor browses anonymously on two devices, then signs up and logs in.
        vec![
            Some("m1"),
            Some("page"),
            None,
            None,
            Some("anon-laptop"),
            Some(&times[0]),
            None,
            None,
        ],
        vec![
            Some("m2"),
            Some("identify"),
            None,
            None,
            Some("anon-laptop"),
            Some(&times[1]),
            Some(r#"{"email":"Ada@Example.com"}"#),
            None,
        ],
        vec![
            Some("m3"),
            Some("track"),
            Some("Signed Up"),
            Some("ada"),
            Some("anon-phone"),
            Some(&times[2]),
            None,
            Some(r#"{"traits":{"email":"ada@example.com"}}"#),
        ],
        vec![
            Some("m4"),
            Some("track"),
            Some("Logged In"),
            Some("ada"),
            Some("anon-laptop"),
            Some(&times[3]),
            None,
            None,
        ],
        // Someone else logs in on Ada's laptop: a second user id would break the limit.
        vec![
            Some("m5"),
            Some("track"),
            Some("Logged In"),
            Some("grace"),
            Some("anon-laptop"),
            Some(&times[4]),
            None,
            None,
        ],
        vec![
            Some("m6"),
            Some("track"),
            Some("Logged In"),
            Some("grace"),
            Some("anon-tablet"),
            Some(&times[5]),
            None,
            None,
        ],
        // A placeholder id is blocked.
        vec![
            Some("m7"),
            Some("page"),
            None,
            None,
            Some("undefined"),
            Some(&times[6]),
            None,
            None,
        ],
    ];
    write_text_parquet(&dir.join("data/dt=2026-10-01/part-0.parquet"), &cols, &rows);
    write_space(dir, "explain", &[("web", "events", "./data")], "./out");
}

fn explain(dir: &Path, id: &str) -> String {
    let out = Command::new(cohort_bin())
        .args(["explain", "identity", dir.to_str().unwrap(), id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The run id carries the wall-clock time.
    let re = regex::Regex::new(r"run \d{8}T\d+Z-\d+").unwrap();
    re.replace_all(&text, "run <run-id>").to_string()
}

#[tokio::test]
async fn explain_identity_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    explain_space(dir);
    run_at(dir, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()).await;
    let cases = [
        ("explain_joined_by_a_chain", "email:Ada@Example.com"),
        ("explain_anonymous_phone", "anonymous_id:anon-phone"),
        ("explain_dropped_in_one_event", "anonymous_id:anon-laptop"),
        ("explain_second_user", "user_id:grace"),
        ("explain_blocked", "anonymous_id:undefined"),
        ("explain_unknown", "user_id:nobody"),
    ];
    for (name, id) in cases {
        let text = explain(dir, id);
        insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, text);
        });
    }
    let bad = Command::new(cohort_bin())
        .args(["explain", "identity", dir.to_str().unwrap(), "phone:123"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`phone` is not an identifier type"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// identity.yaml with `anonymous_id` limited per period.
fn anonymous_limit(dir: &Path, limit: &str) {
    std::fs::write(
        dir.join("identity.yaml"),
        format!(
            "identifiers:\n  - {{ type: user_id, limit: 1 }}\n  - {{ type: email, limit: 5, normalize: lowercase }}\n  \
             - {{ type: anonymous_id, limit: {limit} }}\n"
        ),
    )
    .unwrap();
}

/// A per-period limit, driven as a user does (`cohort run .` and `cohort explain identity .`
/// in the space's folder). Ada's phone comes two days after her laptop: with one anonymous id
/// a week it is dropped, and explain says why; with one a day the laptop's has left the
/// window and the phone joins her profile.
#[tokio::test]
async fn a_per_period_limit_in_runs_and_explain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    explain_space(dir);
    let cohort = |args: &[&str]| crate::live::cohort(dir, args);
    let as_of = "2026-11-01T00:00:00Z";
    anonymous_limit(dir, "1 weekly");
    cohort(&["validate", "."]);
    cohort(&["run", ".", "--as-of", as_of]);
    let text = cohort(&["explain", "identity", ".", "anonymous_id:anon-phone"]);
    assert!(
        text.contains(
            "event m3  rule limit: keeping it would put more than 1 anonymous_id added within \
             7 days on one profile"
        ),
        "{text}"
    );
    assert!(
        !text.contains("profile use_"),
        "anon-phone should belong to no profile: {text}"
    );

    anonymous_limit(dir, "1 daily");
    cohort(&["run", ".", "--as-of", as_of]);
    let text = cohort(&["explain", "identity", ".", "anonymous_id:anon-phone"]);
    assert!(text.contains("4 identifiers:"), "{text}");
    assert!(
        !text.contains("rule limit: keeping it would put more than 1 anonymous_id"),
        "{text}"
    );

    // A period that does not exist is an error at its place in identity.yaml.
    anonymous_limit(dir, "1 fortnightly");
    let out = Command::new(cohort_bin())
        .args(["validate", "."])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("identity.yaml:4:"), "{err}");
    assert!(err.contains("unknown limit period `fortnightly`"), "{err}");
}

#[tokio::test]
async fn identifiers_that_are_not_utf8_are_violations() {
    use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let schema = Arc::new(Schema::new(vec![
        Field::new("message_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, true),
        Field::new("timestamp", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("anonymous_id", DataType::Binary, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["b1", "b2"])),
        Arc::new(StringArray::from(vec!["track", "track"])),
        Arc::new(StringArray::from(vec!["Opened", "Opened"])),
        Arc::new(StringArray::from(vec![
            "2026-10-01T00:00:00Z",
            "2026-10-01T01:00:00Z",
        ])),
        Arc::new(StringArray::from(vec![Some("u1"), Some("u2")])),
        Arc::new(BinaryArray::from(vec![
            Some(&b"ok-anon"[..]),
            Some(&[0x66, 0x6f, 0xff, 0xfe][..]),
        ])),
    ];
    let path = dir.join("data/dt=2026-10-01/part-0.parquet");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    w.write(&RecordBatch::try_new(schema, cols).unwrap())
        .unwrap();
    w.close().unwrap();
    write_space(dir, "bytes", &[("web", "events", "./data")], "./out");
    let stats = run_at(dir, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()).await;
    assert_eq!(stats.profiles, 2);
    let space = load(dir).await;
    let rows = table_rows(&space, "identity_violations", "message_id, id_type, rule").await;
    assert_eq!(
        rows[3..rows.len() - 1],
        ["| b2         | anonymous_id | invalid_utf8 |"]
    );
}
