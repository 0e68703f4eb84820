//! Tests of the generator: determinism, each hard case, exact counts, and the schemas and
//! layout of every preset, read back with Parquet's Arrow reader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::store::objects::{open, resolve_url};

fn opts(preset: Preset, events: u64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        preset,
        events,
        seed,
        days: 12,
        rows_per_file: 4_000,
        ..GenerateOptions::default()
    }
}

async fn run(o: &GenerateOptions) -> (tempfile::TempDir, GenerateReport) {
    let dir = tempfile::tempdir().unwrap();
    let loc = open(&resolve_url(Path::new("/"), dir.path().to_str().unwrap()).unwrap()).unwrap();
    let report = generate(o, &loc, &|_| {}).await.unwrap();
    (dir, report)
}

/// Every file under `dir`, relative path => bytes, in path order.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p: PathBuf = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn read(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn strs(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    let a = a.as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

/// One row of the `events` preset, with its partition.
#[derive(Debug, Clone)]
struct Row {
    dt: String,
    message_id: String,
    kind: String,
    event: Option<String>,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    group_id: Option<String>,
    previous_id: Option<String>,
    timestamp: String,
    properties: Option<String>,
    traits: Option<String>,
    context: Option<String>,
}

#[allow(clippy::needless_range_loop)]
fn event_rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for path in files(dir).into_keys() {
        let dt = path
            .split('/')
            .next()
            .unwrap()
            .strip_prefix("dt=")
            .unwrap()
            .to_string();
        for b in read(&dir.join(&path)) {
            let cols: Vec<_> = EVENTS_COLUMNS.iter().map(|c| strs(&b, c)).collect();
            for i in 0..b.num_rows() {
                let g = |c: usize| cols[c][i].clone();
                rows.push(Row {
                    dt: dt.clone(),
                    message_id: g(0).unwrap(),
                    kind: g(1).unwrap(),
                    event: g(2),
                    user_id: g(3),
                    anonymous_id: g(4),
                    group_id: g(5),
                    previous_id: g(6),
                    timestamp: g(7).unwrap(),
                    properties: g(8),
                    traits: g(9),
                    context: g(10),
                });
            }
        }
    }
    rows
}

fn json(s: &Option<String>) -> Option<serde_json::Value> {
    s.as_deref().and_then(|s| serde_json::from_str(s).ok())
}

const BLOCKED: [&str; 5] = ["null", "0", "anonymous", "", "-1"];

#[tokio::test]
async fn same_seed_same_bytes_other_seed_other_bytes() {
    for preset in Preset::ALL {
        let events = if preset == Preset::Events {
            20_000
        } else {
            6_000
        };
        let (a, ra) = run(&opts(preset, events, 7)).await;
        let (b, rb) = run(&opts(preset, events, 7)).await;
        let (c, _) = run(&opts(preset, events, 8)).await;
        let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
        assert!(!fa.is_empty());
        assert_eq!(
            fa.keys().collect::<Vec<_>>(),
            fb.keys().collect::<Vec<_>>(),
            "{preset}"
        );
        for (k, v) in &fa {
            assert!(
                v == &fb[k],
                "{preset}: {k} differs between two runs with the same seed"
            );
        }
        assert_eq!(
            (ra.events, ra.files, ra.bytes),
            (rb.events, rb.files, rb.bytes)
        );
        assert_eq!(ra.duplicates, rb.duplicates);
        let same = fa.iter().filter(|(k, v)| fc.get(*k) == Some(v)).count();
        assert_eq!(same, 0, "{preset}: another seed wrote identical files");
    }
}

#[tokio::test]
async fn events_preset_has_every_hard_case() {
    let o = opts(Preset::Events, 30_000, 3);
    let (dir, report) = run(&o).await;
    let rows = event_rows(dir.path());
    assert_eq!(rows.len() as u64, o.events);
    assert_eq!(report.events, o.events);
    assert_eq!(report.users, 1_000);
    assert_eq!(report.files as usize, files(dir.path()).len());

    // Duplicates: exact re-sends with the same message id.
    let mut by_id: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_id.entry(&r.message_id).or_default().push(r);
    }
    // A row a reader sets aside: planted bad rows and rows whose ids are all blank.
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let all_blank = |r: &Row| blank(&r.user_id) && blank(&r.anonymous_id) && blank(&r.previous_id);
    let is_bad = |r: &Row| {
        r.timestamp == "not-a-date"
            || r.kind == "bogus"
            || all_blank(r)
            || [&r.properties, &r.traits]
                .iter()
                .any(|p| p.is_some() && json(p).is_none())
    };
    let dups: u64 = by_id
        .values()
        .filter(|v| !is_bad(v[0]))
        .map(|v| v.len() as u64 - 1)
        .sum();
    assert!(dups > 0);
    assert_eq!(dups, report.duplicates);
    for v in by_id.values().filter(|v| v.len() > 1) {
        assert_eq!(
            format!("{:?}", v[0]),
            format!("{:?}", v[1]),
            "a re-send is an exact copy"
        );
    }

    // Bad rows, each kind.
    let not_a_date = rows.iter().filter(|r| r.timestamp == "not-a-date").count();
    let bogus = rows.iter().filter(|r| r.kind == "bogus").count();
    let no_ids = rows
        .iter()
        .filter(|r| r.user_id.is_none() && r.anonymous_id.is_none())
        .count();
    let bad_json = rows
        .iter()
        .filter(|r| {
            [&r.properties, &r.traits]
                .iter()
                .any(|p| p.is_some() && json(p).is_none())
        })
        .count();
    assert!(
        not_a_date > 0 && bogus > 0 && no_ids > 0 && bad_json > 0,
        "{not_a_date} {bogus} {no_ids} {bad_json}"
    );
    assert_eq!(
        rows.iter().filter(|r| is_bad(r)).count() as u64,
        report.bad_rows
    );

    // Late events: timestamp days before the partition.
    let late = rows
        .iter()
        .filter(|r| r.timestamp != "not-a-date" && r.timestamp[..10] < *r.dt)
        .count() as u64;
    assert!(late > 0);
    assert_eq!(late, report.late);
    assert!(rows.iter().any(|r| r.timestamp != "not-a-date"
        && chrono::NaiveDate::parse_from_str(&r.dt, "%Y-%m-%d").unwrap()
            - chrono::NaiveDate::parse_from_str(&r.timestamp[..10], "%Y-%m-%d").unwrap()
            >= chrono::Duration::days(2)));
    // No timestamp after the end; every partition inside the period.
    let end = o.end.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    assert!(
        rows.iter()
            .all(|r| r.timestamp == "not-a-date" || r.timestamp < end)
    );
    let dts: BTreeSet<&str> = rows.iter().map(|r| r.dt.as_str()).collect();
    assert_eq!(dts.len(), o.days as usize);
    assert_eq!(*dts.iter().next_back().unwrap(), "2026-10-31");

    // Placeholder ids.
    assert!(
        rows.iter()
            .any(|r| r.user_id.as_deref().is_some_and(|u| BLOCKED.contains(&u)))
    );
    assert!(rows.iter().any(|r| {
        r.anonymous_id
            .as_deref()
            .is_some_and(|u| BLOCKED.contains(&u))
    }));

    // Emails: the same address spelled with other capitals or spaces, in traits and context.
    let mut spellings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        let t = json(&r.traits);
        let c = json(&r.context);
        for e in [
            t.as_ref().and_then(|t| t["email"].as_str()),
            c.as_ref().and_then(|c| c["traits"]["email"].as_str()),
        ]
        .into_iter()
        .flatten()
        {
            spellings
                .entry(e.trim().to_lowercase())
                .or_default()
                .insert(e.to_string());
        }
    }
    assert!(spellings.values().any(|s| s.len() > 1));
    assert!(spellings.values().flatten().any(|e| e != e.trim()));
    assert!(
        spellings
            .values()
            .flatten()
            .any(|e| e.chars().any(|c| c.is_ascii_uppercase()))
    );

    // Identity: devices linked by user_id, a device shared by two users, users who never log in.
    let real = |s: &Option<String>| {
        s.as_deref()
            .filter(|v| !BLOCKED.contains(v))
            .map(str::to_string)
    };
    let mut anon_users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut user_anons: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &rows {
        if let (Some(a), Some(u)) = (real(&r.anonymous_id), real(&r.user_id)) {
            anon_users.entry(a.clone()).or_default().insert(u.clone());
            user_anons.entry(u).or_default().insert(a);
        }
    }
    assert!(anon_users.values().any(|u| u.len() >= 2), "a shared device");
    assert!(
        user_anons.values().any(|a| a.len() >= 2),
        "a user on several devices"
    );
    let linked: BTreeSet<&String> = anon_users.keys().collect();
    let anonymous_only = rows
        .iter()
        .filter_map(|r| real(&r.anonymous_id))
        .filter(|a| !linked.contains(a))
        .collect::<BTreeSet<_>>();
    assert!(!anonymous_only.is_empty(), "devices that never log in");
    assert!(rows.iter().any(|r| r.kind == "identify"
        && r.user_id.is_none()
        && json(&r.traits).is_some_and(|t| t["email"].is_string())));

    // Alias and group calls.
    let alias = rows
        .iter()
        .find(|r| r.kind == "alias")
        .expect("an alias call");
    assert!(alias.previous_id.is_some() && alias.user_id.is_some());
    let group = rows
        .iter()
        .find(|r| r.kind == "group" && json(&r.traits).is_some())
        .expect("a group call");
    assert!(group.group_id.as_deref().unwrap().starts_with("acct_"));
    let gt = json(&group.traits).unwrap();
    assert!(
        gt["name"].is_string()
            && gt["industry"].is_string()
            && gt["employees"].is_i64()
            && gt["plan"].is_string()
    );

    // Typed properties, page and screen calls, context.
    let names: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.kind == "track")
        .filter_map(|r| r.event.as_deref())
        .collect();
    assert!(names.len() >= 25, "{names:?}");
    let order = rows
        .iter()
        .filter(|r| r.kind == "track" && r.event.as_deref() == Some("Order Completed"))
        .find_map(|r| json(&r.properties))
        .expect("an order");
    assert!(
        order["revenue"].is_f64() && order["order_id"].is_string() && order["products"].is_i64()
    );
    assert!(order["currency"].is_string());
    let review = rows
        .iter()
        .filter(|r| r.event.as_deref() == Some("Review Submitted"))
        .find_map(|r| json(&r.properties))
        .expect("a review");
    assert!(review["rating"].is_i64());
    let page = rows
        .iter()
        .find(|r| r.kind == "page" && json(&r.context).is_some())
        .unwrap();
    let ctx = json(&page.context).unwrap();
    assert!(ctx["page"]["path"].is_string() && ctx["library"]["name"] == "analytics.js");
    assert!(ctx["userAgent"].is_string() && ctx["ip"].is_string() && ctx["locale"].is_string());
    assert!(page.event.is_some());
    let screen = rows
        .iter()
        .find(|r| r.kind == "screen" && json(&r.context).is_some())
        .unwrap();
    let ctx = json(&screen.context).unwrap();
    assert!(
        ctx["device"]["id"].is_string()
            && ctx["device"]["type"].is_string()
            && ctx["os"]["name"].is_string()
    );
    assert!(
        rows.iter()
            .any(|r| r.kind == "identify" && r.user_id.is_some())
    );
}

#[tokio::test]
async fn files_respect_rows_per_file_and_progress_reaches_the_total() {
    let o = GenerateOptions {
        rows_per_file: 500,
        ..opts(Preset::Events, 9_000, 1)
    };
    let dir = tempfile::tempdir().unwrap();
    let loc = open(&resolve_url(Path::new("/"), dir.path().to_str().unwrap()).unwrap()).unwrap();
    let last = std::sync::atomic::AtomicU64::new(0);
    let report = generate(&o, &loc, &|n| {
        last.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_eq!(last.into_inner(), o.events);
    let all = files(dir.path());
    assert!(all.len() > o.days as usize);
    for path in all.keys() {
        let n: usize = read(&dir.path().join(path))
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(n <= 500 && n > 0, "{path}: {n}");
        let parts: Vec<&str> = path.split('/').collect();
        assert_eq!(parts.len(), 2, "{path}");
        assert!(
            parts[0].starts_with("dt=2026-10-")
                && parts[1].starts_with("part-")
                && parts[1].ends_with(".parquet")
        );
    }
    assert_eq!(report.files as usize, all.len());
    assert_eq!(
        report.bytes,
        all.values().map(|b| b.len() as u64).sum::<u64>()
    );
}

#[tokio::test]
async fn warehouse_presets_write_each_table_with_its_schema() {
    for preset in [Preset::Segment, Preset::Rudderstack] {
        let o = opts(preset, 15_000, 5);
        let (dir, report) = run(&o).await;
        assert_eq!(report.events, o.events);
        // No planted bad rows here; only rows whose ids are all blank placeholders.
        assert!(report.bad_rows * 500 < report.events, "{}", report.bad_rows);
        assert!(report.duplicates > 0 && report.late > 0);
        let expected: BTreeMap<String, _> = table_schemas(preset).into_iter().collect();
        let mut rows: BTreeMap<String, usize> = BTreeMap::new();
        let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for path in files(dir.path()).into_keys() {
            let parts: Vec<&str> = path.split('/').collect();
            assert_eq!(parts.len(), 3, "{path}");
            assert!(
                parts[1].starts_with("dt=") && parts[2].starts_with("part-"),
                "{path}"
            );
            let table = parts[0].to_string();
            let schema = expected
                .get(&table)
                .unwrap_or_else(|| panic!("unexpected table {table}"));
            for b in read(&dir.path().join(&path)) {
                let got = b.schema();
                assert_eq!(got.fields().len(), schema.fields().len(), "{table}");
                for (g, e) in got.fields().iter().zip(schema.fields()) {
                    assert_eq!(
                        (g.name(), g.data_type()),
                        (e.name(), e.data_type()),
                        "{table}"
                    );
                }
                *rows.entry(table.clone()).or_default() += b.num_rows();
                ids.entry(table.clone())
                    .or_default()
                    .extend(strs(&b, "id").into_iter().flatten());
            }
        }
        for t in [
            "identifies",
            "tracks",
            "pages",
            "screens",
            "groups",
            "aliases",
            "order_completed",
            "product_viewed",
        ] {
            assert!(
                rows.get(t).copied().unwrap_or(0) > 0,
                "{preset}: no rows in {t}"
            );
        }
        // Each track call is in `tracks` and in its own table.
        let per_event: usize = rows
            .iter()
            .filter(|(t, _)| {
                ![
                    "identifies",
                    "tracks",
                    "pages",
                    "screens",
                    "groups",
                    "aliases",
                ]
                .contains(&t.as_str())
            })
            .map(|(_, n)| n)
            .sum();
        assert_eq!(rows["tracks"], per_event);
        let messages: usize = [
            "identifies",
            "tracks",
            "pages",
            "screens",
            "groups",
            "aliases",
        ]
        .iter()
        .map(|t| rows.get(*t).copied().unwrap_or(0))
        .sum();
        assert_eq!(messages as u64, o.events);
        let track_ids: BTreeSet<&String> = ids["tracks"].iter().collect();
        assert!(ids["order_completed"].iter().all(|i| track_ids.contains(i)));

        let oc = &expected["order_completed"];
        assert_eq!(
            oc.field_with_name("revenue").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            oc.field_with_name("products").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            oc.field_with_name("order_id").unwrap().data_type(),
            &DataType::Utf8
        );
        assert!(oc.field_with_name("event_text").is_ok());
        let ts = expected["tracks"]
            .field_with_name("timestamp")
            .unwrap()
            .data_type()
            .clone();
        assert!(matches!(ts, DataType::Timestamp(_, Some(ref tz)) if tz.as_ref() == "UTC"));
        let ip = if preset == Preset::Segment {
            "context_ip"
        } else {
            "context_request_ip"
        };
        assert!(expected["tracks"].field_with_name(ip).is_ok());
        assert_eq!(
            expected["tracks"].field_with_name("channel").is_ok(),
            preset == Preset::Rudderstack
        );
        assert!(expected["identifies"].field_with_name("email").is_ok());
        assert!(expected["groups"].field_with_name("group_id").is_ok());
        assert!(expected["aliases"].field_with_name("previous_id").is_ok());
        assert!(expected["pages"].field_with_name("referrer").is_ok());

        // Revenue reads back as a float equal to the JSON a reader would see.
        let path = files(dir.path())
            .into_keys()
            .find(|p| p.starts_with("order_completed/"))
            .unwrap();
        let b = &read(&dir.path().join(&path))[0];
        let rev = b
            .column_by_name("revenue")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert!(rev.value(0) > 0.0, "{path}");
        let ev = strs(b, "event");
        assert_eq!(ev[0].as_deref(), Some("order_completed"));
        assert_eq!(strs(b, "event_text")[0].as_deref(), Some("Order Completed"));
    }
}

#[tokio::test]
async fn rejects_zero_days_and_writes_nothing_for_zero_events() {
    let dir = tempfile::tempdir().unwrap();
    let loc = open(&resolve_url(Path::new("/"), dir.path().to_str().unwrap()).unwrap()).unwrap();
    let bad = GenerateOptions {
        days: 0,
        ..GenerateOptions::default()
    };
    assert!(generate(&bad, &loc, &|_| {}).await.is_err());
    let none = GenerateOptions {
        events: 0,
        days: 3,
        ..GenerateOptions::default()
    };
    let r = generate(&none, &loc, &|_| {}).await.unwrap();
    assert_eq!((r.events, r.files), (0, 0));
}

#[tokio::test]
async fn warehouse_memory_is_bounded_by_rows_per_file_over_all_tables() {
    let o = GenerateOptions {
        days: 3,
        rows_per_file: 300,
        ..opts(Preset::Segment, 6_000, 9)
    };
    let (dir, report) = run(&o).await;
    assert_eq!(report.events, o.events);
    let mut messages = 0;
    for path in files(dir.path()).into_keys() {
        let n: usize = read(&dir.path().join(&path))
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(n > 0 && n <= 300, "{path}: {n}");
        let table = path.split('/').next().unwrap();
        if [
            "identifies",
            "tracks",
            "pages",
            "screens",
            "groups",
            "aliases",
        ]
        .contains(&table)
        {
            messages += n as u64;
        }
    }
    assert_eq!(messages, o.events);
}
