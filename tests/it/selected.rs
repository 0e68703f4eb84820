//! A run asked for some definitions only (`cohort run --select`, what a scheduled run does
//! with the definitions due): the selected definitions and what they read are evaluated, every
//! other trait and audience keeps its previous values for every profile, and the next run
//! that evaluates everything catches up with a full run.

use std::path::Path;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};

use crate::common::{cohort_bin, load};
use crate::incremental::{add_generated, assert_same_tables, cohort, generate, iso, store_space};

/// `columns` of a published table, one sorted text line per row.
async fn column_rows(space: &Path, table: &str, columns: &str, filter: &str) -> Vec<String> {
    let space = load(space).await;
    let ctx = datafusion::prelude::SessionContext::new();
    let t = cohort::read::published_table(&space, table)
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("t", t).unwrap();
    let sql = format!("SELECT {columns} FROM t WHERE {filter} ORDER BY {columns}");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    text.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn a_selected_run_keeps_the_other_definitions_and_the_next_run_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    generate(root, 6000, 60, 5);
    store_space(&root.join("inc"), "inc", false);
    store_space(&root.join("full"), "full", false);
    let run_both = |as_of: chrono::DateTime<Utc>, select: Option<&str>| {
        let t = iso(as_of);
        let mut args = vec!["run", "inc", "--as-of", &t];
        if let Some(s) = select {
            args.extend(["--select", s]);
        }
        let inc = cohort(root, &args);
        cohort(root, &["run", "full", "--as-of", &t, "--full"]);
        inc
    };
    let t0 = Utc.with_ymd_and_hms(2026, 9, 10, 0, 0, 0).unwrap();
    let first = run_both(t0, Some("audience:loyal_big_spenders"));
    // Nothing to keep yet: a first run evaluates everything.
    assert!(!first.contains("not evaluated"), "{first}");

    let (inc, full) = (root.join("inc"), root.join("full"));
    let all_members = "audience_key, entity_type, profile_id, entered_at";
    let kept_audiences = "audience_key NOT IN ('loyal_big_spenders', 'big_spenders')";
    let before_members =
        column_rows(&inc, "audience_membership", all_members, kept_audiences).await;
    let kept_traits = "profile_id, favorite_category, orders_90d, lifetime_orders";
    let before_traits = column_rows(&inc, "profiles", kept_traits, "true").await;

    // New events; a run asked for one nested audience evaluates it, the audience it reads and
    // the trait that one reads, and keeps everything else as it was.
    add_generated(root, "d1", 400, 2, t0 + Duration::days(2), 51);
    let t1 = t0 + Duration::days(2);
    let out = run_both(t1, Some("loyal_big_spenders"));
    assert!(
        out.contains(
            "not evaluated (not selected or due), every profile kept its values: traits \
             [big_orders_30d, categories_bought, favorite_category, last_order_currency, \
             orders_90d], SQL traits [lifetime_orders], audiences \
             [browsed_not_added, cart_abandoners, lapsed_customers]"
        ),
        "{out}"
    );
    let selected = "audience_key IN ('loyal_big_spenders', 'big_spenders')";
    let members = "audience_key, entity_type, profile_id";
    assert_eq!(
        column_rows(&inc, "audience_membership", members, selected).await,
        column_rows(&full, "audience_membership", members, selected).await,
        "the selected audiences are evaluated"
    );
    let revenue = "profile_id, total_revenue";
    assert_eq!(
        column_rows(&inc, "profiles", revenue, "true").await,
        column_rows(&full, "profiles", revenue, "true").await,
        "the trait a selected audience reads is evaluated"
    );
    assert_eq!(
        column_rows(&inc, "audience_membership", all_members, kept_audiences).await,
        before_members,
        "the other audiences keep their members"
    );
    let now_traits = column_rows(&inc, "profiles", kept_traits, "true").await;
    let kept_rows = before_traits
        .iter()
        .filter(|r| now_traits.contains(r))
        .count();
    assert_eq!(
        kept_rows,
        before_traits.len(),
        "the other traits keep their values"
    );
    assert_ne!(
        column_rows(&full, "profiles", kept_traits, "true").await,
        now_traits,
        "the new events change some kept trait, or this test proves nothing"
    );

    // The next run evaluates what the selected run kept for every profile.
    let t2 = t1 + Duration::hours(1);
    let out = run_both(t2, None);
    assert!(out.contains("evaluated for every profile"), "{out}");
    assert!(out.contains("favorite_category"), "{out}");
    let tables = ["identities", "profiles", "account_links", "recent_events"];
    assert_same_tables(root, "the run after a selected one", &tables).await;
    // The same members; those the selected run kept out entered now, not at its as-of.
    assert_eq!(
        column_rows(&inc, "audience_membership", members, "true").await,
        column_rows(&full, "audience_membership", members, "true").await,
    );
}

#[tokio::test]
async fn an_unknown_selection_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    store_space(&tmp.path().join("inc"), "inc", false);
    std::fs::create_dir_all(tmp.path().join("data/events")).unwrap();
    let out = Command::new(cohort_bin())
        .args(["run", "inc", "--select", "audience:big_spenders,nope"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`nope` is not a definition of space `inc`"),
        "{err}"
    );
}
