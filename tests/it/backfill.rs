//! `backfill: false` in batch runs: a computed trait or audience counts only the events after
//! it first appeared in the run history (the as-of of the first run that had it, kept in the
//! manifest). The values are checked against a count over the published `events`; an
//! incremental run and a `--full` run at the same as-of publish the same tables; an edit keeps
//! the time, a removal and a new addition start it over.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};

use crate::common::{load, text_rows};
use crate::incremental::{assert_same_tables, cohort, iso, store_space};

const TRAIT: &str = "traits/orders_since_added.yaml";
const AUDIENCE: &str = "audiences/ordered_since_added.yaml";

fn write_both(root: &Path, rel: &str, body: Option<&str>) {
    for s in ["inc", "full"] {
        let p = root.join(s).join(rel);
        match body {
            Some(b) => std::fs::write(p, b).unwrap(),
            None => std::fs::remove_file(p).unwrap(),
        }
    }
}

fn run_both(root: &Path, as_of: DateTime<Utc>) {
    let t = iso(as_of);
    cohort(root, &["run", "inc", "--as-of", &t]);
    cohort(root, &["run", "full", "--as-of", &t, "--full"]);
}

/// Sorted `profile_id|value` lines of one query over the published tables of `inc`.
async fn lines(root: &Path, sql: &str) -> Vec<String> {
    let space = load(&root.join("inc")).await;
    let ctx = cohort::read::query_session(&space, Utc::now())
        .await
        .unwrap();
    // The published `events` (with profile ids), besides the sources' event view.
    let t = cohort::read::published_table(&space, "events")
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("resolved", t).unwrap();
    let mut out = text_rows(&ctx, sql).await;
    out.sort();
    out
}

/// What the manifest of `inc` records as the trait's first appearance.
async fn first_seen(root: &Path) -> Option<String> {
    let space = load(&root.join("inc")).await;
    let out = cohort::read::output_location(&space).unwrap();
    let m = cohort::store::manifest::read(&out).await.unwrap().unwrap();
    m.first_seen?.get("trait:orders_since_added").cloned()
}

/// The orders after `since` up to `as_of` per profile, from the published events.
async fn expected(root: &Path, since: DateTime<Utc>, as_of: DateTime<Utc>) -> Vec<String> {
    let sql = format!(
        "SELECT profile_id, count(*) FROM resolved WHERE event = 'Order Completed' \
         AND timestamp > TIMESTAMP '{}' AND timestamp <= TIMESTAMP '{}' GROUP BY profile_id",
        since.format("%Y-%m-%dT%H:%M:%S"),
        as_of.format("%Y-%m-%dT%H:%M:%S")
    );
    lines(root, &sql).await
}

async fn counted(root: &Path) -> Vec<String> {
    lines(
        root,
        "SELECT profile_id, orders_since_added FROM profiles WHERE orders_since_added > 0",
    )
    .await
}

async fn members(root: &Path) -> Vec<String> {
    lines(
        root,
        "SELECT profile_id FROM audience_membership WHERE audience_key = 'ordered_since_added'",
    )
    .await
}

#[tokio::test]
async fn backfill_off_counts_only_events_after_the_definition_first_appeared() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    cohort(
        root,
        &[
            "generate",
            "--events",
            "6000",
            "--days",
            "60",
            "--end",
            "2026-09-20",
            "--seed",
            "11",
            "--out",
            "data/events",
        ],
    );
    store_space(&root.join("inc"), "inc", false);
    store_space(&root.join("full"), "full", false);
    let t0 = Utc.with_ymd_and_hms(2026, 8, 20, 0, 0, 0).unwrap();
    run_both(root, t0);

    // Added at t1: the run that adds them counts nothing.
    let t1 = Utc.with_ymd_and_hms(2026, 9, 1, 12, 0, 0).unwrap();
    write_both(
        root,
        TRAIT,
        Some("query: \"event('Order Completed').count()\"\nbackfill: false\n"),
    );
    write_both(
        root,
        AUDIENCE,
        Some("query: \"event('Order Completed').count() >= 1\"\nbackfill: false\n"),
    );
    run_both(root, t1);
    assert_eq!(first_seen(root).await, Some(t1.to_rfc3339()));
    assert!(counted(root).await.is_empty());
    assert!(members(root).await.is_empty());

    // Later runs count the orders after t1 only.
    let t2 = Utc.with_ymd_and_hms(2026, 9, 10, 0, 0, 0).unwrap();
    run_both(root, t2);
    let want = expected(root, t1, t2).await;
    assert!(want.len() >= 5, "the case needs orders after t1: {want:?}");
    let all = expected(root, t0 - chrono::Duration::days(400), t2).await;
    assert_ne!(want, all, "backfill would count other orders");
    assert_eq!(counted(root).await, want);
    let ids: Vec<String> = want
        .iter()
        .map(|l| l.split('|').next().unwrap().to_string())
        .collect();
    assert_eq!(members(root).await, ids);
    assert_same_tables(
        root,
        "t2",
        &["profiles", "audience_membership", "audience_changes"],
    )
    .await;

    // An edit keeps the time.
    write_both(
        root,
        TRAIT,
        Some(
            "query: \"event('Order Completed').where(property('revenue') >= 0).count()\"\nbackfill: false\n",
        ),
    );
    let t3 = Utc.with_ymd_and_hms(2026, 9, 15, 0, 0, 0).unwrap();
    run_both(root, t3);
    assert_eq!(first_seen(root).await, Some(t1.to_rfc3339()));
    assert_eq!(counted(root).await, expected(root, t1, t3).await);
    assert_same_tables(
        root,
        "t3",
        &["profiles", "audience_membership", "audience_changes"],
    )
    .await;

    // Removed, then added again: it starts over.
    write_both(root, TRAIT, None);
    let t4 = Utc.with_ymd_and_hms(2026, 9, 16, 0, 0, 0).unwrap();
    run_both(root, t4);
    assert_eq!(first_seen(root).await, None);
    write_both(
        root,
        TRAIT,
        Some("query: \"event('Order Completed').count()\"\nbackfill: false\n"),
    );
    let t5 = Utc.with_ymd_and_hms(2026, 9, 18, 0, 0, 0).unwrap();
    run_both(root, t5);
    assert_eq!(first_seen(root).await, Some(t5.to_rfc3339()));
    assert!(counted(root).await.is_empty());
    let t6 = Utc.with_ymd_and_hms(2026, 9, 21, 0, 0, 0).unwrap();
    run_both(root, t6);
    assert_eq!(counted(root).await, expected(root, t5, t6).await);
    assert!(!counted(root).await.is_empty());
    assert_same_tables(
        root,
        "t6",
        &["profiles", "audience_membership", "audience_changes"],
    )
    .await;
}
