//! A SQL trait that reads only the events, with immutable functions, is not evaluated by a
//! run whose events are the previous run's (nothing new, nothing crossed the as-of): every
//! profile keeps its published values, and the run still publishes what a `--full` run
//! publishes. Anything that could change its rows has it evaluated again.

use chrono::{Duration, TimeZone, Utc};

use crate::incremental::{add_generated, assert_same_tables, cohort, generate, iso, store_space};

const TABLES: [&str; 4] = [
    "identities",
    "profiles",
    "audience_membership",
    "recent_events",
];

/// The record line of the SQL traits a run did not evaluate.
const UNCHANGED: &str =
    "SQL traits not evaluated, nothing they read changed (every profile kept its values): ";

#[tokio::test]
async fn a_sql_trait_whose_events_did_not_change_keeps_its_values() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    generate(root, 5000, 40, 9);
    // The store's `lifetime_orders` reads `web`; `stamped` calls now().
    let stamped = "SELECT user_id, max(timestamp) < now() AS seen_before_now\nFROM web\n\
                   WHERE user_id IS NOT NULL\nGROUP BY user_id\n";
    for s in ["inc", "full"] {
        store_space(&root.join(s), s, false);
        std::fs::write(root.join(s).join("queries/stamped.sql"), stamped).unwrap();
    }
    let run_both = |as_of: chrono::DateTime<Utc>, select: Option<&str>| {
        let t = iso(as_of);
        let mut args = vec!["run", "inc", "--as-of", &t];
        args.extend(select.iter().flat_map(|s| ["--select", s]));
        let inc = cohort(root, &args);
        cohort(root, &["run", "full", "--as-of", &t, "--full"]);
        inc
    };
    // After the last event: later as-ofs make no event visible.
    let t0 = Utc.with_ymd_and_hms(2026, 9, 22, 0, 0, 0).unwrap();
    let first = run_both(t0, None);
    assert!(!first.contains(UNCHANGED), "{first}");

    // Nothing new: the pure trait keeps its values, the one calling now() is evaluated.
    let out = run_both(t0 + Duration::hours(1), None);
    assert!(
        out.contains(&format!("{UNCHANGED}[lifetime_orders]")),
        "{out}"
    );
    assert_same_tables(root, "nothing new", &TABLES).await;

    // Its query edited: evaluated (with the new query's values), then unchanged again.
    let edited = "SELECT user_id, count(*) + 1 AS lifetime_orders\nFROM web\n\
                  WHERE type = 'track' AND event = 'Order Completed' AND user_id IS NOT NULL\n\
                  GROUP BY user_id\n";
    for s in ["inc", "full"] {
        std::fs::write(root.join(s).join("queries/lifetime_orders.sql"), edited).unwrap();
    }
    let out = run_both(t0 + Duration::hours(2), None);
    assert!(!out.contains(UNCHANGED), "{out}");
    assert_same_tables(root, "the query edited", &TABLES).await;
    let out = run_both(t0 + Duration::hours(3), None);
    assert!(
        out.contains(&format!("{UNCHANGED}[lifetime_orders]")),
        "{out}"
    );

    // New events in old partitions: evaluated; they change its values, or this proves nothing.
    let before = crate::incremental::rows(&root.join("inc"), "profiles").await;
    add_generated(root, "late", 400, 10, t0 - Duration::days(5), 91);
    let out = run_both(t0 + Duration::hours(4), None);
    assert!(!out.contains(UNCHANGED), "{out}");
    assert_same_tables(root, "late events", &TABLES).await;
    assert_ne!(
        crate::incremental::rows(&root.join("inc"), "profiles").await,
        before
    );

    // A run that keeps it without evaluating it (not selected) leaves values that may be stale:
    // the next run evaluates it.
    let out = run_both(t0 + Duration::hours(5), Some("trait:orders_90d"));
    assert!(
        out.contains("SQL traits [lifetime_orders, stamped]"),
        "{out}"
    );
    assert!(!out.contains(UNCHANGED), "{out}");
    let out = run_both(t0 + Duration::hours(6), None);
    assert!(!out.contains(UNCHANGED), "{out}");
    assert_same_tables(root, "the run after a selected one", &TABLES).await;
}
