//! What a run writes of the tables that cannot change, or change only by what it adds: a run
//! whose events are the previous run's names the previous versions of the identity tables
//! again (and of `events` and `identity_occurrences`, which gain new users' events by an
//! append), and every run after the first appends its rows to `audience_changes`, unless a
//! commit came after the version the previous run published (a run that died publishing),
//! when it writes the table whole. Each step is checked against a `--full` run of a twin
//! space, as the incremental tests do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};

use crate::common::load;
use crate::incremental::{add_generated, assert_same_tables, cohort, generate, iso, store_space};

const TABLES: [&str; 5] = [
    "identities",
    "identity_violations",
    "profiles",
    "audience_membership",
    "audience_changes",
];

const IDENTITY: [&str; 3] = ["identities", "identity_violations", "identity_graph"];

/// The history tables a run writes as what changed.
const HISTORY: [&str; 2] = ["events", "identity_occurrences"];

/// The table versions the manifest of `root/inc` names.
async fn versions(root: &Path) -> BTreeMap<String, u64> {
    let space = load(&root.join("inc")).await;
    let out = cohort::read::output_location(&space).unwrap();
    let m = cohort::store::manifest::read(&out).await.unwrap().unwrap();
    m.tables
}

#[tokio::test]
async fn unchanged_tables_keep_their_versions_and_changes_are_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    generate(root, 4000, 30, 5);
    for s in ["inc", "full"] {
        store_space(&root.join(s), s, true);
    }
    let run_both = |as_of: chrono::DateTime<Utc>| {
        let t = iso(as_of);
        cohort(root, &["run", "inc", "--as-of", &t]);
        cohort(root, &["run", "full", "--as-of", &t, "--full"]);
    };
    let t0 = Utc.with_ymd_and_hms(2026, 9, 22, 0, 0, 0).unwrap();
    run_both(t0);
    let before = versions(root).await;

    // Nothing new, a day later (memberships change as windows move): the identity tables are
    // the previous versions, the changes one version on.
    run_both(t0 + Duration::days(1));
    assert_same_tables(root, "nothing new", &TABLES).await;
    let after = versions(root).await;
    for t in IDENTITY.iter().chain(&HISTORY) {
        assert_eq!(after[*t], before[*t], "{t}: {before:?} then {after:?}");
    }
    assert_eq!(after["audience_changes"], before["audience_changes"] + 1);
    assert!(after["profiles"] > before["profiles"]);

    // A commit after the published version (what a run that died publishing leaves): the
    // next run does not append to it, or the changes would hold its rows twice.
    let space = load(&root.join("inc")).await;
    let out = cohort::read::output_location(&space).unwrap();
    let loc = out.child("audience_changes");
    let at = after["audience_changes"];
    let ctx = cohort::run::session::new_session(&Default::default()).unwrap();
    let provider = cohort::store::delta::provider(&loc, at).await.unwrap();
    let rows = ctx.read_table(Arc::clone(&provider)).unwrap();
    let state = ctx.state();
    let orphan = cohort::store::delta::append_at(&loc, rows.logical_plan().clone(), &state, at);
    assert_eq!(orphan.await.unwrap(), Some(at + 1));
    // The table moved on: nothing is appended at the published version.
    let stale = cohort::store::delta::append_at(&loc, rows.logical_plan().clone(), &state, at);
    assert_eq!(stale.await.unwrap(), None);
    run_both(t0 + Duration::days(2));
    assert_same_tables(root, "a commit after the published version", &TABLES).await;

    // New events in old partitions: the identity tables are written again.
    let before = versions(root).await;
    add_generated(root, "late", 300, 10, t0 - Duration::days(5), 77);
    run_both(t0 + Duration::days(2) + Duration::hours(1));
    assert_same_tables(root, "late events", &TABLES).await;
    let after = versions(root).await;
    assert!(after["identities"] > before["identities"], "{after:?}");
    // They are new users' events: the history tables gained them by an append.
    for t in HISTORY {
        assert!(after[t] > before[t], "{t}: {after:?}");
        assert!(
            appended(root, t, after[t]),
            "{t} version {} rewrote files",
            after[t]
        );
    }
}

/// Whether version `v` of `table` in `root/inc` only added files (an append).
fn appended(root: &Path, table: &str, v: u64) -> bool {
    let log = root.join(format!("inc/out/inc/{table}/_delta_log/{v:020}.json"));
    let text = std::fs::read_to_string(&log).unwrap();
    text.contains("\"mode\":\"Append\"") && !text.contains("\"remove\"")
}
