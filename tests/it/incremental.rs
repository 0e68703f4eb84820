//! Incremental runs against full ones, driven through the binary as users run it (relative
//! paths, the current folder): after every step of a random sequence (new day partitions,
//! late files in old partitions, repeated message ids, a new identify that merges two
//! profiles, as-of moving by minutes to weeks, definitions edited, added and removed, an
//! ingested file rewritten), a space run incrementally publishes the same rows as a copy of it
//! run with `--full` at the same as-of. Also: a changed or deleted ingested file forces a
//! rebuild that the run record explains.

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::common::{EVENT_COLUMNS, cohort_bin, load, write_text_parquet};

/// Tables whose rows must be equal (run ids aside).
const COMPARED: [&str; 10] = [
    "events",
    "identity_occurrences",
    "identities",
    "identity_violations",
    "profiles",
    "accounts",
    "account_links",
    "audience_membership",
    "audience_changes",
    "recent_events",
];

pub(crate) fn cohort(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(cohort_bin())
        .args(args)
        .current_dir(cwd)
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cohort {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The rows of a published table (without `run_id`), as sorted text lines.
pub(crate) async fn rows(space: &Path, table: &str) -> Vec<String> {
    let space = load(space).await;
    let ctx = datafusion::prelude::SessionContext::new();
    let Some(t) = cohort::read::published_table(&space, table).await.unwrap() else {
        return Vec::new();
    };
    let df = ctx.read_table(t).unwrap();
    let keep: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "run_id")
        .collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    let batches = df.select_columns(&keep).unwrap().collect().await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = text
        .lines()
        .skip(3)
        .filter(|l| !l.starts_with('+'))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A tiny deterministic generator (no dependency, same sequence everywhere).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Generates events into a temp folder, then moves every file into `data` under a new name
/// (so existing files stay as they are), into the partition folder it was written to.
pub(crate) fn add_generated(
    root: &Path,
    tag: &str,
    events: u64,
    days: u32,
    end: DateTime<Utc>,
    seed: u64,
) {
    let gen_dir = root.join(format!("gen-{tag}"));
    let end = end.format("%Y-%m-%d").to_string();
    let (events, days, seed) = (events.to_string(), days.to_string(), seed.to_string());
    let args = [
        "generate", "--events", &events, "--days", &days, "--end", &end, "--seed", &seed, "--out",
    ];
    let mut args = args.to_vec();
    let rel = format!("gen-{tag}");
    args.push(&rel);
    cohort(root, &args);
    for part in std::fs::read_dir(&gen_dir).unwrap() {
        let part = part.unwrap();
        if !part.file_type().unwrap().is_dir() {
            continue;
        }
        let target = root.join("data/events").join(part.file_name());
        std::fs::create_dir_all(&target).unwrap();
        for f in std::fs::read_dir(part.path()).unwrap() {
            let f = f.unwrap();
            let name = format!("{tag}-{}", f.file_name().to_string_lossy());
            std::fs::rename(f.path(), target.join(name)).unwrap();
        }
    }
    std::fs::remove_dir_all(gen_dir).unwrap();
}

/// `cohort generate` of `events` events over `days` days ending 2026-09-20 into `data/events`
/// of `root`, as a user runs it there.
pub(crate) fn generate(root: &Path, events: u64, days: u32, seed: u64) {
    let (events, days, seed) = (events.to_string(), days.to_string(), seed.to_string());
    let args = [
        "generate",
        "--events",
        &events,
        "--days",
        &days,
        "--end",
        "2026-09-20",
        "--seed",
        &seed,
        "--out",
        "data/events",
    ];
    cohort(root, &args);
}

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A hand-made event: message id, type, user id, anonymous id, time.
pub(crate) type Row<'a> = (
    String,
    &'a str,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
);

/// Writes hand-made events (message id, type, user id, anonymous id, time) into a partition.
pub(crate) fn write_events(root: &Path, file: &str, rows: &[Row<'_>]) {
    let day = rows[0].4.format("%Y-%m-%d");
    let texts: Vec<[Option<String>; 11]> = rows
        .iter()
        .map(|(m, ty, u, a, t)| {
            let event = (*ty == "track").then(|| "Order Completed".to_string());
            let props =
                (*ty == "track").then(|| r#"{"revenue": 120, "order_id": "x"}"#.to_string());
            let traits = (*ty == "identify").then(|| r#"{"plan": "pro"}"#.to_string());
            [
                Some(m.clone()),
                Some(ty.to_string()),
                event,
                u.clone(),
                a.clone(),
                None,
                None,
                Some(iso(*t)),
                props,
                traits,
                None,
            ]
        })
        .collect();
    let rows: Vec<Vec<Option<&str>>> = texts
        .iter()
        .map(|r| r.iter().map(|c| c.as_deref()).collect())
        .collect();
    let path = root.join(format!("data/events/dt={day}/{file}.parquet"));
    write_text_parquet(&path, &EVENT_COLUMNS, &rows);
}

/// Copies the store example's definitions into `dir` with a source reading `../data/events`.
/// Without `accounts`, the account-level trait and audiences are left out, and so is
/// `within_last` (which a run evaluates for every profile and account).
pub(crate) fn store_space(dir: &Path, name: &str, accounts: bool) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spaces/store");
    for sub in ["traits", "audiences", "queries", "destinations"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for f in std::fs::read_dir(example.join(sub)).unwrap() {
            let f = f.unwrap();
            let file = f.file_name().to_string_lossy().to_string();
            if !accounts
                && ["account_orders_30d.yaml", "active_big_accounts.yaml"].contains(&file.as_str())
            {
                continue;
            }
            std::fs::copy(f.path(), dir.join(sub).join(f.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("identity.yaml"), dir.join("identity.yaml")).unwrap();
    std::fs::write(
        dir.join("space.yaml"),
        format!(
            "name: {name}\nspec_version: 1\nsources:\n  - name: web\n    preset: events\n    url: ../data/events\noutput: ./out\n"
        ),
    )
    .unwrap();
    // The audience kinds the example lacks: account ALL / NOT ANY and within_last.
    let extra = [
        (
            "all_active_accounts",
            "type: accounts\nquery: \"ALL event('Signed In').within(30 days).count() >= 1\"\n",
        ),
        (
            "quiet_accounts",
            "type: accounts\nquery: \"NOT ANY event('Order Completed').within(14 days).count() >= 1\"\n",
        ),
        (
            "new_signups",
            "query: \"trait('created_at').within_last(21 days)\"\n",
        ),
    ];
    for (key, body) in extra.iter().filter(|_| accounts) {
        std::fs::write(
            dir.join("audiences").join(format!("{key}.yaml")),
            format!("name: {key}\n{body}"),
        )
        .unwrap();
    }
}

/// Writes `body` to `rel` in both spaces, or removes it there (None); whether that changed
/// the file.
fn edit_both(root: &Path, rel: &str, body: Option<&str>) -> bool {
    let before = std::fs::read_to_string(root.join("inc").join(rel)).ok();
    for s in ["inc", "full"] {
        let p = root.join(s).join(rel);
        match body {
            Some(b) => std::fs::write(p, b).unwrap(),
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    before.as_deref() != body
}

async fn assert_same(root: &Path, step: &str) {
    assert_same_tables(root, step, &COMPARED).await
}

/// `tables` of `root/inc` and `root/full` hold the same rows (run ids aside).
pub(crate) async fn assert_same_tables(root: &Path, step: &str, tables: &[&str]) {
    for &table in tables {
        let (a, b) = (
            rows(&root.join("inc"), table).await,
            rows(&root.join("full"), table).await,
        );
        if a != b {
            let only_a: Vec<_> = a.iter().filter(|l| !b.contains(l)).take(5).collect();
            let only_b: Vec<_> = b.iter().filter(|l| !a.contains(l)).take(5).collect();
            panic!(
                "after {step}: `{table}` differs ({} rows incremental, {} full)\nonly incremental: {only_a:#?}\nonly full: {only_b:#?}",
                a.len(),
                b.len()
            );
        }
    }
}

#[tokio::test]
async fn incremental_runs_publish_what_full_runs_publish() {
    // Seed 7 over the whole store space (its account-level and `within_last` definitions are
    // evaluated for every profile and account at every run, the rest for the touched
    // profiles); seed 21 without them (only the touched profiles, but for the edits).
    for seed in [7u64, 21] {
        let accounts = seed == 7;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let start = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
        generate(root, 6000, 60, seed);
        store_space(&root.join("inc"), "inc", accounts);
        store_space(&root.join("full"), "full", accounts);
        // Besides the store's `lifetime_orders`, a SQL trait keyed by the anonymous id whose
        // row goes when its identifier reaches a fourth event.
        for s in ["inc", "full"] {
            std::fs::write(root.join(s).join("queries/few_events.sql"), FEW_EVENTS).unwrap();
        }
        // Two profiles that a later identify joins.
        let t0 = start - Duration::days(20);
        write_events(
            root,
            "merge-setup",
            &[
                ("m-1".into(), "track", None, Some("anon-m".into()), t0),
                (
                    "m-2".into(),
                    "track",
                    Some("user-m".into()),
                    None,
                    t0 + Duration::hours(2),
                ),
            ],
        );
        let mut rng = Lcg(seed);
        let mut as_of = start;
        let mut step_log = Vec::new();
        let run_both = |as_of: DateTime<Utc>| {
            let t = iso(as_of);
            let inc = cohort(root, &["run", "inc", "--as-of", &t]);
            cohort(root, &["run", "full", "--as-of", &t, "--full"]);
            inc
        };
        let first = run_both(as_of);
        assert!(first.contains("sources (full: no previous run)"), "{first}");
        let mut rewritten = false;
        let mut edited = false;
        let mut revenue = 0;
        // Every kind of step once, in an order of the seed's, then two more at random.
        let mut order: Vec<u64> = (0..7).collect();
        for k in (1..order.len()).rev() {
            order.swap(k, rng.next(k as u64 + 1) as usize);
        }
        order.extend([rng.next(7), rng.next(7)]);
        for (i, step) in order.into_iter().enumerate() {
            let i = i as u64;
            let what = match step {
                0 => {
                    // A new day partition (not yet in scope until as-of reaches it).
                    let end = as_of + Duration::days(2);
                    add_generated(root, &format!("d{i}"), 300, 1, end, seed * 100 + i);
                    as_of += Duration::hours(30);
                    "new day"
                }
                1 => {
                    add_generated(
                        root,
                        &format!("l{i}"),
                        200,
                        10,
                        as_of - Duration::days(15),
                        seed * 200 + i,
                    );
                    as_of += Duration::minutes(5 + rng.next(300) as i64);
                    "late files"
                }
                2 => {
                    // Copies of earlier message ids, one earlier than before, carrying
                    // other identifiers: the copy that wins replaces the event, and the
                    // identifiers only the replaced version carried leave their profiles.
                    let t = as_of - Duration::days(3 + rng.next(5) as i64);
                    let mut rows: Vec<_> = (0..4)
                        .map(|k| {
                            (
                                format!("dup-{k}"),
                                "track",
                                Some(format!("user-d{k}")),
                                Some(format!("anon-d{k}-{i}")),
                                t - Duration::hours(k),
                            )
                        })
                        .collect();
                    rows.push((
                        "m-1".into(),
                        "track",
                        None,
                        Some(format!("anon-split-{i}")),
                        start - Duration::days(20) - Duration::hours(i as i64 + 1),
                    ));
                    write_events(root, &format!("dups-{i}"), &rows);
                    as_of += Duration::minutes(1);
                    "repeated message ids"
                }
                3 => {
                    let t = as_of - Duration::hours(1);
                    let row = (
                        "m-3".to_string(),
                        "identify",
                        Some("user-m".into()),
                        Some("anon-m".into()),
                        t,
                    );
                    write_events(root, &format!("merge-{i}"), &[row]);
                    as_of += Duration::minutes(10);
                    "an identify merging two profiles"
                }
                4 => {
                    as_of += Duration::minutes(30 + rng.next(60 * 24 * 14) as i64);
                    "time passing"
                }
                5 => {
                    if !accounts {
                        // An audience another one reads (`loyal_big_spenders`), every time.
                        revenue = if revenue == 300 { 400 } else { 300 };
                        let body = format!(
                            "name: Big Spenders\nquery: \"trait('total_revenue') > {revenue} AND event('Order Completed').within(45 days).count() >= 1\"\ndestinations: [crm_webhook]\n"
                        );
                        edit_both(root, "audiences/big_spenders.yaml", Some(&body));
                    }
                    edited = match rng.next(3) {
                        0 => edit_both(
                            root,
                            "traits/orders_14d.yaml",
                            Some("query: \"event('Order Completed').within(14 days).count()\"\n"),
                        ),
                        1 => edit_both(
                            root,
                            "traits/orders_90d.yaml",
                            Some("query: \"event('Order Completed').within(60 days).count()\"\n"),
                        ),
                        _ if accounts => edit_both(root, "audiences/quiet_accounts.yaml", None),
                        _ => edit_both(root, "audiences/lapsed_customers.yaml", None),
                    } || !accounts;
                    as_of += Duration::hours(2);
                    "definitions edited"
                }
                _ => {
                    if rewritten {
                        as_of += Duration::days(1);
                        "time passing"
                    } else {
                        rewritten = true;
                        let t = start - Duration::days(20) + Duration::hours(3);
                        write_events(
                            root,
                            "merge-setup",
                            &[
                                (
                                    "m-1".into(),
                                    "track",
                                    None,
                                    Some("anon-m".into()),
                                    start - Duration::days(20),
                                ),
                                ("m-2".into(), "track", Some("user-m".into()), None, t),
                                ("m-4".into(), "track", Some("user-m".into()), None, t),
                            ],
                        );
                        as_of += Duration::hours(1);
                        "an ingested file rewritten"
                    }
                }
            };
            step_log.push(format!("{what} (as of {})", iso(as_of)));
            let out = run_both(as_of);
            // SQL traits over new events are evaluated for their identifiers only (with those
            // of the events a copy replaced), unless the graph was rebuilt.
            let keyed = out.contains(&format!("{KEYED}[few_events ("));
            match what {
                "new day" | "late files" | "repeated message ids" => {
                    assert!(keyed, "{what}: {out}")
                }
                "an ingested file rewritten" => assert!(!keyed, "{what}: {out}"),
                _ => {}
            }
            if what == "an ingested file rewritten" {
                assert!(
                    out.contains("merge-setup.parquet changed after run"),
                    "{out}"
                );
            } else if what != "definitions edited" {
                assert!(out.contains("sources (incremental)"), "{what}: {out}");
                assert!(
                    out.contains("traits and audiences (incremental)"),
                    "{what}: {out}"
                );
                if accounts {
                    assert!(
                        out.contains(
                            "audiences [active_big_accounts, all_active_accounts, new_signups"
                        ),
                        "{what}: {out}"
                    );
                }
            }
            if what == "definitions edited" && edited {
                // Only the edited definitions (and what reads them) see every profile.
                assert!(out.contains("traits and audiences (incremental)"), "{out}");
                if !accounts {
                    assert!(
                        out.contains("audiences [big_spenders, loyal_big_spenders]"),
                        "{out}"
                    );
                }
            }
            assert_same(root, &step_log.join(" -> ")).await;
        }
    }
}

/// A SQL trait of the property test whose rows come and go (`HAVING`).
const FEW_EVENTS: &str = "SELECT anonymous_id, count(*) AS few_events, count(DISTINCT event) AS \
                          few_event_kinds\nFROM web\nWHERE anonymous_id IS NOT NULL\n\
                          GROUP BY anonymous_id\nHAVING count(*) < 4\n";

/// The record line of the SQL traits evaluated for the changed identifiers.
const KEYED: &str = "SQL traits evaluated for the identifiers of the changed events only \
                     (every other identifier kept its row): ";

#[tokio::test]
async fn a_changed_or_deleted_file_forces_a_rebuild_the_record_explains() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    cohort(
        root,
        &[
            "generate",
            "--events",
            "2000",
            "--days",
            "10",
            "--end",
            "2026-09-20",
            "--out",
            "data/events",
        ],
    );
    store_space(&root.join("inc"), "inc", true);
    let t = Utc.with_ymd_and_hms(2026, 9, 15, 12, 0, 0).unwrap();
    let one = |m: &str| (m.to_string(), "track", Some("user-x".to_string()), None, t);
    write_events(root, "extra", &[one("x-1")]);
    let out = cohort(root, &["run", "inc", "--as-of", "2026-09-20"]);
    assert!(out.contains("sources (full: no previous run)"), "{out}");
    let out = cohort(root, &["run", "inc", "--as-of", "2026-09-20T01:00:00Z"]);
    assert!(out.contains("sources (incremental): 0 files read"), "{out}");

    write_events(root, "extra", &[one("x-1"), one("x-2")]);
    let out = cohort(root, &["run", "inc", "--as-of", "2026-09-20T02:00:00Z"]);
    let file = root.join("data/events/dt=2026-09-15/extra.parquet");
    let file = file.to_string_lossy();
    assert!(
        out.contains(&format!("sources (full: {file} changed after run")),
        "{out}"
    );
    assert!(
        out.contains("identity (full:"),
        "the graph is rebuilt too: {out}"
    );

    std::fs::remove_file(root.join("data/events/dt=2026-09-15/extra.parquet")).unwrap();
    let out = cohort(root, &["run", "inc", "--as-of", "2026-09-20T03:00:00Z"]);
    assert!(
        out.contains(&format!("sources (full: {file} was ingested by run")),
        "{out}"
    );
    assert!(out.contains("is gone (deleted or moved)"), "{out}");

    // The runs table keeps why, for every run.
    let space = load(&root.join("inc")).await;
    let ctx = datafusion::prelude::SessionContext::new();
    let runs = cohort::read::published_table(&space, "runs")
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("runs", runs).unwrap();
    let text = crate::common::query_text(&ctx, "SELECT ingest FROM runs ORDER BY as_of").await;
    assert!(text.contains(r#""mode":"incremental""#), "{text}");
    assert!(text.contains("is gone (deleted or moved)"), "{text}");
    assert!(text.contains("changed after run"), "{text}");
}
