//! Identity repairs (repairs.yaml), driven as a user does: `cohort run .` in the space's folder
//! before and after each repair, then `cohort run . --full`, which must publish the same
//! tables. On a shared in-store device and on a hub of 10,000 identifiers: every kind of
//! repair, what `identity_repairs` says it did, and audience memberships that follow.

use std::path::Path;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use cohort::read;

use crate::common::{cohort_bin, load, text_rows, write_space, write_text_parquet};
use crate::live::cohort;

const COLUMNS: [&str; 6] = [
    "message_id",
    "type",
    "event",
    "anonymous_id",
    "timestamp",
    "context",
];

/// One `Signed Up` event carrying an anonymous id and, maybe, an email.
fn row(msg: &str, minute: i64, anon: &str, email: Option<&str>) -> Vec<Option<String>> {
    let t = Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap() + Duration::minutes(minute);
    vec![
        Some(msg.to_string()),
        Some("track".into()),
        Some("Signed Up".into()),
        Some(anon.to_string()),
        Some(t.to_rfc3339()),
        email.map(|e| format!(r#"{{"traits":{{"email":"{e}"}}}}"#)),
    ]
}

fn write_rows(dir: &Path, rows: &[Vec<Option<String>>]) {
    let rows: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| c.as_deref()).collect())
        .collect();
    write_text_parquet(
        &dir.join("data/dt=2026-10-01/part-0.parquet"),
        &COLUMNS,
        &rows,
    );
    write_space(dir, "repairs", &[("web", "events", "./data")], "./out");
    std::fs::create_dir_all(dir.join("audiences")).unwrap();
    std::fs::write(
        dir.join("audiences/signed_up_twice.yaml"),
        "name: Signed Up Twice\nquery: \"event('Signed Up').count() >= 2\"\n",
    )
    .unwrap();
    // A SQL trait per anonymous id: its rows start a profile for an id no profile holds.
    std::fs::create_dir_all(dir.join("queries")).unwrap();
    std::fs::write(
        dir.join("queries/device_events.sql"),
        "SELECT anonymous_id, count(*) AS device_events FROM web\n\
         WHERE anonymous_id IS NOT NULL GROUP BY anonymous_id\n",
    )
    .unwrap();
}

const AS_OF: &str = "2026-11-01T00:00:00Z";

/// What a run published that a repair can change, as text rows.
async fn published(dir: &Path) -> Vec<String> {
    let space = load(dir).await;
    let ctx = datafusion::prelude::SessionContext::new();
    for t in [
        "identities",
        "identity_violations",
        "events",
        "audience_membership",
        "identity_graph",
        "profiles",
    ] {
        let p = read::published_table(&space, t).await.unwrap().unwrap();
        ctx.register_table(t, p).unwrap();
    }
    let mut out = Vec::new();
    for (name, sql) in [
        (
            "identities",
            "SELECT profile_id, id_type, id_value, first_seen, last_seen FROM identities",
        ),
        (
            "violations",
            "SELECT message_id, id_type, id_value, rule, detail, profile_id \
             FROM identity_violations",
        ),
        ("events", "SELECT message_id, profile_id FROM events"),
        (
            "members",
            "SELECT audience_key, profile_id FROM audience_membership",
        ),
        ("graph", "SELECT node, component FROM identity_graph"),
        ("profiles", "SELECT profile_id, device_events FROM profiles"),
    ] {
        let mut rows = text_rows(&ctx, sql).await;
        rows.sort();
        out.extend(rows.into_iter().map(|r| format!("{name}: {r}")));
    }
    out
}

/// The profiles, each as its sorted `type:value` list.
async fn profiles(dir: &Path) -> Vec<Vec<String>> {
    let space = load(dir).await;
    let ctx = datafusion::prelude::SessionContext::new();
    let p = read::published_table(&space, "identities")
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("identities", p).unwrap();
    let rows = text_rows(
        &ctx,
        "SELECT profile_id, id_type || ':' || id_value FROM identities",
    )
    .await;
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in rows {
        let (p, id) = r.split_once('|').unwrap();
        by.entry(p.to_string()).or_default().push(id.to_string());
    }
    let mut out: Vec<Vec<String>> = by
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    out.sort();
    out
}

/// `identity_repairs` as `kind identifier status set_aside`.
async fn repair_rows(dir: &Path) -> Vec<String> {
    let space = load(dir).await;
    let ctx = datafusion::prelude::SessionContext::new();
    let p = read::published_table(&space, "identity_repairs")
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("r", p).unwrap();
    text_rows(
        &ctx,
        "SELECT kind, identifier, status, set_aside, location FROM r ORDER BY location",
    )
    .await
}

/// The last run's `audience_changes` rows as `change identifiers`.
async fn last_changes(dir: &Path) -> Vec<String> {
    let space = load(dir).await;
    let ctx = datafusion::prelude::SessionContext::new();
    let p = read::published_table(&space, "audience_changes")
        .await
        .unwrap()
        .unwrap();
    ctx.register_table("c", p).unwrap();
    text_rows(
        &ctx,
        "SELECT change, identifiers FROM c WHERE run_id = (SELECT max(run_id) FROM c) \
         ORDER BY change, identifiers",
    )
    .await
}

/// Writes repairs.yaml, runs (incrementally, as the summary must say), keeps what it
/// published, runs `--full` and checks the full rebuild published the same. Returns the
/// audience changes of the incremental run.
async fn repaired_run(dir: &Path, repairs: &str) -> Vec<String> {
    std::fs::write(dir.join("repairs.yaml"), repairs).unwrap();
    cohort(dir, &["validate", "."]);
    let summary = cohort(dir, &["run", ".", "--as-of", AS_OF]);
    assert!(summary.contains("identity (incremental)"), "{summary}");
    let incremental = published(dir).await;
    let changes = last_changes(dir).await;
    cohort(dir, &["run", ".", "--as-of", AS_OF, "--full"]);
    let full = published(dir).await;
    assert_eq!(incremental, full, "an incremental run after `{repairs}`");
    changes
}

fn ids(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// A tablet in the shop that customers sign up on: its anonymous id links their emails into
/// one profile. Each repair, applied to the published run, equals a full rebuild with it.
#[tokio::test]
async fn repairs_of_a_shared_device() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_rows(
        dir,
        &[
            row("m1", 1, "kiosk", Some("a@x.io")),
            row("m2", 2, "kiosk", Some("b@x.io")),
            row("m3", 3, "kiosk", Some("c@x.io")),
            row("m4", 4, "home-a", Some("a@x.io")),
            row("m5", 5, "kiosk", None),
            row("m6", 6, "home-b", Some("b@x.io")),
        ],
    );
    cohort(dir, &["run", ".", "--as-of", AS_OF]);
    let all = ids(&[
        "anonymous_id:home-a",
        "anonymous_id:home-b",
        "anonymous_id:kiosk",
        "email:a@x.io",
        "email:b@x.io",
        "email:c@x.io",
    ]);
    assert_eq!(profiles(dir).await, vec![all]);
    let before = published(dir).await;
    let member_before: Vec<&String> = before.iter().filter(|r| r.starts_with("members")).collect();
    assert_eq!(member_before.len(), 1, "{before:?}");

    // Unlink: the tablet links nobody; the emails' events stay theirs. Ann's profile keeps
    // the merged one's id and membership; Bob's enters the audience.
    let changes = repaired_run(
        dir,
        "- unlink: anonymous_id:kiosk\n  reason: the shop's tablet\n",
    )
    .await;
    assert_eq!(
        changes,
        vec![r#"entered|{"anonymous_id":["home-b"],"email":["b@x.io"]}"#]
    );
    assert_eq!(
        profiles(dir).await,
        vec![
            ids(&["anonymous_id:home-a", "email:a@x.io"]),
            ids(&["anonymous_id:home-b", "email:b@x.io"]),
            ids(&["anonymous_id:kiosk"]),
            ids(&["email:c@x.io"]),
        ]
    );
    assert_eq!(
        repair_rows(dir).await,
        vec!["unlink|anonymous_id:kiosk|applied|3|repairs.yaml:1"]
    );
    let now = published(dir).await;
    let members: Vec<&String> = now.iter().filter(|r| r.starts_with("members")).collect();
    assert_eq!(members.len(), 2, "a and b signed up twice each: {now:?}");
    let explain = cohort(dir, &["explain", "identity", ".", "anonymous_id:kiosk"]);
    assert!(
        explain.contains("rule repair_unlink: unlink anonymous_id:kiosk: the shop's tablet"),
        "{explain}"
    );

    // An entry written above it moves the unlink to line 3 and changes nothing it did.
    repaired_run(
        dir,
        "- block: anonymous_id:nobody-x\n  reason: a typo\n\
         - unlink: anonymous_id:kiosk\n  reason: the shop's tablet\n",
    )
    .await;
    assert_eq!(
        repair_rows(dir).await,
        vec![
            "block|anonymous_id:nobody-x|unknown_identifier|0|repairs.yaml:1",
            "unlink|anonymous_id:kiosk|applied|3|repairs.yaml:3",
        ]
    );

    // Split: the tablet takes its events; c@x.io was seen only there.
    repaired_run(
        dir,
        "- split: anonymous_id:kiosk\n  reason: the shop's tablet\n",
    )
    .await;
    assert_eq!(
        profiles(dir).await,
        vec![
            ids(&["anonymous_id:home-a", "email:a@x.io"]),
            ids(&["anonymous_id:home-b", "email:b@x.io"]),
            ids(&["anonymous_id:kiosk"]),
        ]
    );
    assert_eq!(
        repair_rows(dir).await,
        vec!["split|anonymous_id:kiosk|applied|3|repairs.yaml:1"]
    );

    // Block, and a merge of two emails known to be one person.
    repaired_run(
        dir,
        "- block: anonymous_id:kiosk\n  reason: the shop's tablet\n\
         - merge: [email:C@X.io, email:a@x.io]\n  reason: Ann's old address (SUP-7)\n",
    )
    .await;
    assert_eq!(
        profiles(dir).await,
        vec![
            ids(&["anonymous_id:home-a", "email:a@x.io", "email:c@x.io"]),
            ids(&["anonymous_id:home-b", "email:b@x.io"]),
        ]
    );
    assert_eq!(
        repair_rows(dir).await,
        vec![
            "block|anonymous_id:kiosk|applied|4|repairs.yaml:1",
            "merge|email:c@x.io|applied|0|repairs.yaml:3",
        ]
    );

    // A repair naming nothing known is a warning, and the table says so.
    std::fs::write(
        dir.join("repairs.yaml"),
        "- unlink: anonymous_id:nobody\n  reason: typo\n",
    )
    .unwrap();
    let out = Command::new(cohort_bin())
        .args(["validate", "."])
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("repairs.yaml:1:") && err.contains("`anonymous_id:nobody` is in no event"),
        "{err}"
    );
    cohort(dir, &["run", ".", "--as-of", AS_OF]);
    assert_eq!(
        repair_rows(dir).await,
        vec!["unlink|anonymous_id:nobody|unknown_identifier|0|repairs.yaml:1"]
    );
    // With the repairs gone, the run is the first one again.
    std::fs::write(dir.join("repairs.yaml"), "").unwrap();
    cohort(dir, &["run", ".", "--as-of", AS_OF]);
    assert_eq!(published(dir).await, before);
}

/// One anonymous id on 10,000 people's sign-ups (with loose limits, one profile of 20,001
/// identifiers): each repair against a full rebuild. Unlinked or blocked, the hub belongs to
/// no profile (every event that carries it carries an email); split, it keeps its events.
#[tokio::test]
async fn repairs_of_a_hub_of_10k_identifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rows = Vec::new();
    for i in 0..10_000 {
        let email = format!("p{i}@x.io");
        rows.push(row(&format!("hub-{i}"), i, "hub", Some(&email)));
        rows.push(row(
            &format!("home-{i}"),
            20_000 + i,
            &format!("h{i}"),
            Some(&email),
        ));
    }
    write_rows(dir, &rows);
    std::fs::write(
        dir.join("identity.yaml"),
        "identifiers:\n  - { type: user_id, limit: 1 }\n  \
         - { type: email, limit: 20000, normalize: lowercase }\n  \
         - { type: anonymous_id, limit: 20000 }\n",
    )
    .unwrap();
    cohort(dir, &["run", ".", "--as-of", AS_OF]);
    let p = profiles(dir).await;
    assert_eq!((p.len(), p[0].len()), (1, 20_001));

    for (yaml, n_profiles, set_aside) in [
        ("- unlink: anonymous_id:hub\n  reason: r\n", 10_000, 10_000),
        ("- split: anonymous_id:hub\n  reason: r\n", 10_001, 10_000),
        ("- block: anonymous_id:hub\n  reason: r\n", 10_000, 10_000),
    ] {
        repaired_run(dir, yaml).await;
        let p = profiles(dir).await;
        assert_eq!(p.len(), n_profiles, "{yaml}");
        let kind = yaml.trim_start_matches("- ").split(':').next().unwrap();
        assert_eq!(
            repair_rows(dir).await,
            vec![format!(
                "{kind}|anonymous_id:hub|applied|{set_aside}|repairs.yaml:1"
            )]
        );
    }
    repaired_run(
        dir,
        "- unlink: anonymous_id:hub\n  reason: r\n\
         - merge: [email:p1@x.io, email:p2@x.io]\n  reason: one person\n",
    )
    .await;
    let p = profiles(dir).await;
    assert_eq!(p.len(), 9_999);
    assert!(p.contains(&ids(&[
        "anonymous_id:h1",
        "anonymous_id:h2",
        "email:p1@x.io",
        "email:p2@x.io"
    ])));
}

/// `cohort identity unlink | merge | block` write repairs.yaml entries (and refuse ones that do
/// not validate, leaving the file as it was); `cohort identity diff` says what the next run
/// changes before it runs.
#[tokio::test]
async fn identity_helpers_and_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_rows(
        dir,
        &[
            row("m1", 1, "kiosk", Some("a@x.io")),
            row("m2", 2, "kiosk", Some("b@x.io")),
            row("m3", 3, "home-a", Some("a@x.io")),
        ],
    );
    cohort(dir, &["run", ".", "--as-of", AS_OF]);
    let diff = cohort(dir, &["identity", "diff", ".", "--as-of", AS_OF]);
    assert!(
        diff.contains("the next run changes no identifier's profile"),
        "{diff}"
    );

    let out = cohort(
        dir,
        &[
            "identity",
            "unlink",
            ".",
            "anonymous_id:kiosk",
            "--reason",
            "the shop's tablet: #7",
        ],
    );
    assert!(
        out.contains("repairs.yaml:2: unlink anonymous_id:kiosk"),
        "{out}"
    );
    let written = std::fs::read_to_string(dir.join("repairs.yaml")).unwrap();
    assert!(
        written
            .ends_with("- unlink: \"anonymous_id:kiosk\"\n  reason: \"the shop's tablet: #7\"\n"),
        "{written}"
    );
    for bad in [
        vec![
            "identity",
            "merge",
            ".",
            "email:a@x.io",
            "phone:1",
            "--reason",
            "r",
        ],
        vec![
            "identity",
            "block",
            ".",
            "anonymous_id:kiosk",
            "--reason",
            "r",
        ],
        vec!["identity", "split", ".", "kiosk", "--reason", "r"],
    ] {
        let out = Command::new(cohort_bin())
            .args(&bad)
            .current_dir(dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join("repairs.yaml")).unwrap(),
            written
        );
    }

    // Before the run: Bob's email leaves Ann's profile for one of its own, and the tablet
    // (never alone in an event) leaves every profile.
    let diff = cohort(dir, &["identity", "diff", ".", "--as-of", AS_OF]);
    assert!(
        diff.contains("identifiers: 1 move to another profile, 0 arrive, 1 leave every profile"),
        "{diff}"
    );
    assert!(diff.contains("profiles: 0 merge, 1 split"), "{diff}");
    let kiosk = diff
        .lines()
        .find(|l| l.contains("anonymous_id:kiosk"))
        .unwrap();
    assert!(kiosk.ends_with("-> (no profile)"), "{diff}");
    assert!(diff.contains("email:b@x.io"), "{diff}");
    cohort(dir, &["run", ".", "--as-of", AS_OF]);
    let diff = cohort(dir, &["identity", "diff", ".", "--as-of", AS_OF]);
    assert!(
        diff.contains("the next run changes no identifier's profile"),
        "{diff}"
    );

    let out = cohort(
        dir,
        &[
            "identity",
            "merge",
            ".",
            "email:b@x.io",
            "email:A@x.io",
            "--reason",
            "one person",
        ],
    );
    assert!(
        out.contains("repairs.yaml:4: merge email:b@x.io email:A@x.io"),
        "{out}"
    );
    let diff = cohort(dir, &["identity", "diff", ".", "--as-of", AS_OF]);
    assert!(diff.contains("profiles: 1 merge, 0 split"), "{diff}");
}
