//! Audience memberships and changes across runs: entered / exited rows diffed against the
//! previous published run, entered_at carried over while a profile stays in, merged profiles
//! followed; and the errors audiences get at validate time.

use std::path::Path;

use datafusion::prelude::SessionContext;

use crate::common::{EVENT_COLUMNS, load, text_rows, write_space, write_text_parquet};

/// `(message_id, type, event, user_id, anonymous_id, timestamp)` rows as one Parquet file.
fn some(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

fn write_day(dir: &Path, day: &str, rows: &[[&str; 6]]) {
    let rows: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|r| {
            let o = some;
            vec![
                o(r[0]),
                o(r[1]),
                o(r[2]),
                o(r[3]),
                o(r[4]),
                None,
                None,
                o(r[5]),
                None,
                None,
                None,
            ]
        })
        .collect();
    write_text_parquet(
        &dir.join(format!("data/events/dt={day}/part-0.parquet")),
        &EVENT_COLUMNS,
        &rows,
    );
}

/// Run options at `as_of` (RFC 3339 or a date).
fn at(as_of: &str) -> cohort::run::RunOptions {
    cohort::run::RunOptions {
        as_of: Some(cohort::cli::parse_time(as_of).unwrap()),
        ..Default::default()
    }
}

async fn run(dir: &Path, as_of: &str) -> SessionContext {
    let space = load(dir).await;
    let opts = at(as_of);
    cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();
    cohort::read::query_session(&space, opts.as_of.unwrap())
        .await
        .unwrap()
}

/// The error of a run that must fail.
async fn run_error(dir: &Path, as_of: &str) -> String {
    let space = load(dir).await;
    cohort::run::run(&space, &at(as_of), &cohort::run::Quiet)
        .await
        .unwrap_err()
        .to_string()
}

/// Who: the user id, else the anonymous ids.
const WHO: &str = "coalesce(p.user_id, array_to_string(p.anonymous_id, ','))";

#[tokio::test]
async fn entered_and_exited_across_three_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_space(
        dir,
        "changes",
        &[("web", "events", "./data/events")],
        "./out",
    );
    std::fs::create_dir_all(dir.join("audiences")).unwrap();
    std::fs::write(
        dir.join("audiences/buyers_7d.yaml"),
        "query: \"event('Order Completed').within(7 days).count() >= 1\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("audiences/never_bought.yaml"),
        "query: \"event('Order Completed').count() = 0\"\n",
    )
    .unwrap();
    // No event has a revenue: allowed, with a warning in the run record.
    std::fs::write(
        dir.join("audiences/big_orders.yaml"),
        "query: \"event('Order Completed').where(property('revenue') > 100).count() >= 1\"\n",
    )
    .unwrap();

    // Run 1, as of 10-10: u1 bought on 10-09; u2 only signed in.
    write_day(
        dir,
        "2026-10-09",
        &[
            [
                "m1",
                "track",
                "Order Completed",
                "u1",
                "",
                "2026-10-09T12:00:00Z",
            ],
            ["m2", "track", "Signed In", "u2", "", "2026-10-09T13:00:00Z"],
        ],
    );
    let ctx = run(dir, "2026-10-10T00:00:00Z").await;
    let sql = format!(
        "SELECT m.audience_key, {WHO}, CAST(m.entered_at AS VARCHAR) FROM audience_membership m \
         JOIN profiles p USING (profile_id) ORDER BY 1, 2"
    );
    assert_eq!(
        text_rows(&ctx, &sql).await,
        [
            "buyers_7d|u1|2026-10-10T00:00:00Z",
            "never_bought|u2|2026-10-10T00:00:00Z"
        ]
    );
    let changes = format!(
        "SELECT c.audience_key, {WHO}, c.change, c.identifiers FROM audience_changes c \
         JOIN profiles p USING (profile_id) WHERE c.as_of = (SELECT max(as_of) FROM audience_changes) \
         ORDER BY 1, 2"
    );
    assert_eq!(
        text_rows(&ctx, &changes).await,
        [
            r#"buyers_7d|u1|entered|{"user_id":"u1"}"#,
            r#"never_bought|u2|entered|{"user_id":"u2"}"#
        ]
    );

    // Run 2, as of 10-15: u2 buys on 10-14 (enters buyers, exits never_bought); an anonymous
    // visitor a3 buys too.
    write_day(
        dir,
        "2026-10-14",
        &[
            [
                "m3",
                "track",
                "Order Completed",
                "u2",
                "",
                "2026-10-14T12:00:00Z",
            ],
            [
                "m4",
                "track",
                "Order Completed",
                "",
                "a3",
                "2026-10-14T13:00:00Z",
            ],
        ],
    );
    let ctx = run(dir, "2026-10-15T00:00:00Z").await;
    assert_eq!(
        text_rows(&ctx, &sql).await,
        [
            "buyers_7d|a3|2026-10-15T00:00:00Z",
            "buyers_7d|u1|2026-10-10T00:00:00Z",
            "buyers_7d|u2|2026-10-15T00:00:00Z",
        ]
    );
    assert_eq!(
        text_rows(&ctx, &changes).await,
        [
            r#"buyers_7d|a3|entered|{"anonymous_id":["a3"]}"#,
            r#"buyers_7d|u2|entered|{"user_id":"u2"}"#,
            r#"never_bought|u2|exited|{"user_id":"u2"}"#,
        ]
    );

    // Run 3, as of 10-19: u1's order is now older than 7 days (exits); a3 identifies as u2, so
    // their profiles merge: the surviving profile was a member already and stays, with the
    // earliest entered_at, and nobody exits because of the merge.
    write_day(
        dir,
        "2026-10-18",
        &[["m5", "identify", "", "u2", "a3", "2026-10-18T09:00:00Z"]],
    );
    let ctx = run(dir, "2026-10-19T00:00:00Z").await;
    assert_eq!(
        text_rows(&ctx, &sql).await,
        ["buyers_7d|u2|2026-10-15T00:00:00Z"]
    );
    assert_eq!(
        text_rows(&ctx, &changes).await,
        [r#"buyers_7d|u1|exited|{"user_id":"u1"}"#]
    );
    // The whole history: three runs, every change once.
    assert_eq!(
        text_rows(
            &ctx,
            "SELECT count(DISTINCT run_id), count(*) FROM audience_changes"
        )
        .await,
        ["3|6"]
    );
    // The run record counts them per audience.
    let runs = text_rows(
        &ctx,
        "SELECT audiences FROM runs ORDER BY started_at DESC LIMIT 1",
    )
    .await;
    assert!(
        runs[0].contains(r#""buyers_7d":{"entity":"users","members":1,"entered":0,"exited":1}"#),
        "{runs:?}"
    );
    assert!(
        runs[0].contains(
            "audience `big_orders` reads property('revenue') of 'Order Completed' events, and no such event has it in this run"
        ),
        "{runs:?}"
    );
}

/// A space with one Order Completed event and the given audiences (and a computed trait
/// `orders` = count of orders).
fn space_with(dir: &Path, audiences: &[(&str, &str)]) {
    write_space(dir, "bad", &[("web", "events", "./data/events")], "./out");
    write_day(
        dir,
        "2026-10-09",
        &[[
            "m1",
            "track",
            "Order Completed",
            "u1",
            "",
            "2026-10-09T12:00:00Z",
        ]],
    );
    std::fs::create_dir_all(dir.join("traits")).unwrap();
    std::fs::write(
        dir.join("traits/orders.yaml"),
        "query: \"event('Order Completed').count()\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("audiences")).unwrap();
    for (k, y) in audiences {
        std::fs::write(dir.join(format!("audiences/{k}.yaml")), y).unwrap();
    }
}

/// Validate: a cycle names it, a user audience cannot read an account audience, and a
/// comparison a known type cannot fit is an error at its line and column.
#[tokio::test]
async fn audience_errors_at_validate() {
    let tmp = tempfile::tempdir().unwrap();
    space_with(
        tmp.path(),
        &[
            ("a", "query: \"trait('b') AND trait('orders') > 1\"\n"),
            ("b", "query: \"trait('c') = true\"\n"),
            ("c", "query: \"NOT trait('a')\"\n"),
            (
                "counts",
                "query: \"event('Order Completed').count() >= 'many'\"\n",
            ),
            (
                "listy",
                "name: Listy\nquery: \"trait('orders') contains 'x'\"\n",
            ),
            ("flag", "query: \"trait('c') > 1\"\n"),
            (
                "acc",
                "type: accounts\nquery: \"ANY trait('orders') >= 1\"\n",
            ),
            ("reads_acc", "query: \"trait('acc')\"\n"),
        ],
    );
    let v = cohort::analyze::validate_space(tmp.path()).await;
    let got: Vec<String> = v
        .diagnostics
        .iter()
        .map(|d| {
            let loc = d.loc.as_ref().unwrap();
            format!(
                "{}:{}:{}: {}",
                cohort::spec::slash_path(&loc.file),
                loc.line,
                loc.col,
                d.message
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "audiences/c.yaml:1:13: audiences read each other in a cycle: a → b → c → a",
            "audiences/counts.yaml:1:9: `.count()` is a number; compare it with a number, e.g. >= 1",
            "audiences/flag.yaml:1:9: audience `c` is true or false; compare it with = true or = false",
            "audiences/listy.yaml:2:9: trait `orders` is a number, and `contains` needs text or a list",
            "audiences/reads_acc.yaml:1:9: `acc` is an account audience; a user audience cannot read it (an account audience can read user audiences with ANY / ALL)",
        ],
        "{got:#?}"
    );
}

/// Run: an unknown trait or audience key is an error at its place, with a suggestion.
#[tokio::test]
async fn unknown_trait_key_is_an_error_with_a_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    space_with(
        tmp.path(),
        &[("buyers", "query: \"trait('ordrs') >= 1\"\n")],
    );
    let e = run_error(tmp.path(), "2026-10-10").await;
    assert!(e.contains("audiences/buyers.yaml:1:9"), "{e}");
    assert!(
        e.contains("unknown trait or audience `ordrs`") && e.contains("did you mean `orders`?"),
        "{e}"
    );
    // Nothing but the failed run's record was published.
    let manifest =
        std::fs::read_to_string(tmp.path().join("out/bad/_cohort/manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let tables: Vec<&String> = m["tables"].as_object().unwrap().keys().collect();
    assert_eq!(tables, ["runs"], "{manifest}");
}

/// A deleted audience's key cannot come back.
#[tokio::test]
async fn a_deleted_audience_key_cannot_be_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    space_with(
        dir,
        &[
            ("buyers", "query: \"trait('orders') >= 1\"\n"),
            ("keep", "query: \"trait('orders') = 0\"\n"),
            // An account audience in a space without group calls: no accounts, no rows.
            (
                "accts",
                "type: accounts\nquery: \"ALL trait('orders') >= 1\"\n",
            ),
        ],
    );
    let ctx = run(dir, "2026-10-10T00:00:00Z").await;
    assert_eq!(
        text_rows(
            &ctx,
            "SELECT audience_key, entity_type, count(*) FROM audience_membership GROUP BY 1, 2"
        )
        .await,
        ["buyers|users|1"]
    );
    std::fs::remove_file(dir.join("audiences/buyers.yaml")).unwrap();
    run(dir, "2026-10-11T00:00:00Z").await;
    std::fs::write(
        dir.join("audiences/buyers.yaml"),
        "query: \"trait('orders') >= 2\"\n",
    )
    .unwrap();
    let e = run_error(dir, "2026-10-12").await;
    assert!(
        e.contains("audiences/buyers.yaml")
            && e.contains("`buyers` belonged to an audience that was deleted"),
        "{e}"
    );
}

/// Preview sizes an audience (saved or not) without publishing; explain says why a profile
/// is in or out, with the events that decided it.
#[tokio::test]
async fn preview_and_explain_audience() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    space_with(
        dir,
        &[
            (
                "buyers",
                "query: \"event('Order Completed').count() >= 1\"\n",
            ),
            ("active", "query: \"event('Signed In').within(7 days)\"\n"),
        ],
    );
    write_day(
        dir,
        "2026-10-08",
        &[
            ["m2", "track", "Signed In", "u1", "", "2026-10-08T08:00:00Z"],
            ["m3", "track", "Signed In", "u2", "", "2026-10-08T09:00:00Z"],
            ["m4", "track", "Signed In", "u3", "", "2026-09-01T09:00:00Z"],
        ],
    );
    let opts = at("2026-10-10");
    let space = load(dir).await;
    // An unsaved audience: active buyers or anyone who signed in long ago.
    let text = "name: Mixed\nquery: \"trait('buyers') AND trait('active') OR event('Signed In').between(7 days, 90 days).count() >= 1\"\n";
    let def = cohort::spec::read_audience_text(Path::new("mixed.yaml"), text).unwrap();
    let with = cohort::read::preview::with_audience(&space, def);
    let r = cohort::read::preview::preview(&with, "mixed", &opts)
        .await
        .unwrap();
    assert_eq!((r.size, r.total), (2, 3), "{r:?}");
    let conds: Vec<(&str, u64)> = r.conditions.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    assert_eq!(
        conds,
        [
            ("trait('buyers') AND trait('active')", 1),
            (
                "event('Signed In').between(7 days, 90 days).count() >= 1",
                1
            )
        ]
    );
    let overlaps: Vec<(&str, u64, u64)> = r
        .overlaps
        .iter()
        .map(|o| (o.key.as_str(), o.size, o.both))
        .collect();
    assert_eq!(overlaps, [("active", 2, 1), ("buyers", 1, 1)]);
    assert_eq!(r.samples.len(), 2);
    assert!(
        r.samples
            .iter()
            .any(|(_, ids)| ids == r#"{"user_id":"u3"}"#),
        "{:?}",
        r.samples
    );
    assert!(
        !dir.join("out/bad/_cohort/manifest.json").exists(),
        "preview publishes nothing"
    );

    let ex = cohort::read::preview::explain_audience(&space, "buyers", "user_id", "u1", &opts)
        .await
        .unwrap();
    assert!(ex.member);
    assert_eq!(ex.conditions.len(), 1);
    assert!(ex.conditions[0].holds);
    assert_eq!(
        ex.conditions[0].events,
        [(
            "event('Order Completed').count()".to_string(),
            vec![("m1".to_string(), "2026-10-09T12:00:00Z".to_string())]
        )]
    );
    let ex = cohort::read::preview::explain_audience(&space, "active", "user_id", "u3", &opts)
        .await
        .unwrap();
    assert!(!ex.member);
    assert_eq!(ex.conditions[0].events[0].1, Vec::<(String, String)>::new());
    let e = cohort::read::preview::explain_audience(&space, "active", "user_id", "nobody", &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no profile has `user_id:nobody`"), "{e}");
}
