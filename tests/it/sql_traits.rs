//! SQL traits: read-only refusals at validate time, the result contract at run time, and rows
//! merged into profiles through the identity graph.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use cohort::functions::node_code;
use cohort::identity::new_profile_id;
use cohort::plan::identity::ResolvedRules;
use cohort::read;
use cohort::run::identity::resolve_events;
use cohort::run::session::{SessionOptions, new_session};
use cohort::run::sql_traits::{
    DEFAULT_SQL_TRAIT_SCHEDULE, run_sql_trait, run_sql_traits, sql_trait_schedule,
};
use cohort::run::{self};
use cohort::spec::{Space, SqlTraitDef};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;

use crate::common::{EVENT_COLUMNS, load, write_space, write_text_parquet};

/// A space `acme` in `dir` with the `web` source (events preset) at `dir/data`, and the given
/// files.
fn space_dir(dir: &Path, files: &[(&str, &str)]) {
    write_space(dir, "acme", &[("web", "events", "./data")], "./out");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

async fn diagnostics(files: &[(&str, &str)]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    space_dir(tmp.path(), files);
    let v = cohort::analyze::validate_space(tmp.path()).await;
    v.diagnostics.iter().map(|d| d.to_string()).collect()
}

#[tokio::test]
async fn validate_refuses_what_is_not_a_read_only_query() {
    let got = diagnostics(&[
        (
            "queries/ok.sql",
            "SELECT user_id, count(*) AS n FROM web GROUP BY user_id\n",
        ),
        ("queries/a_drop.sql", "DROP TABLE web\n"),
        ("queries/b_copy.sql", "COPY web TO '/tmp/out.csv'\n"),
        (
            "queries/c_insert.sql",
            "-- fill it\nINSERT INTO web SELECT * FROM web\n",
        ),
        (
            "queries/d_set.sql",
            "SET datafusion.execution.batch_size = 1\n",
        ),
        (
            "queries/e_csv.sql",
            "SELECT email, plan\nFROM read_csv('x')\n",
        ),
        (
            "queries/f_cte.sql",
            "WITH raw AS (\n  SELECT * FROM read_parquet('s3://bucket/leak/')\n)\n\
             SELECT user_id, count(*) AS n FROM raw GROUP BY user_id\n",
        ),
    ])
    .await;
    let refused = |file: &str, at: &str, reason: &str| {
        format!("error: queries/{file}.sql:{at}: SQL trait `{file}` is refused: {reason}",)
    };
    assert_eq!(
        got,
        [
            refused(
                "a_drop",
                "1:1",
                "`DROP` changes the catalog; only a read-only query is allowed"
            ),
            refused(
                "b_copy",
                "1:1",
                "`COPY` reads or writes files; only a read-only query is allowed"
            ),
            refused(
                "c_insert",
                "2:1",
                "`INSERT` writes data; only a read-only query is allowed"
            ),
            refused(
                "d_set",
                "1:1",
                "`SET` changes the session; only a read-only query is allowed"
            ),
            refused(
                "e_csv",
                "2:6",
                "`read_csv(...)` in FROM is a table function, which can read files or URLs; \
                 query the space's registered tables by name"
            ),
            refused(
                "f_cte",
                "2:17",
                "`read_parquet(...)` in FROM is a table function, which can read files or URLs; \
                 query the space's registered tables by name"
            ),
        ]
    );
}

#[tokio::test]
async fn validate_checks_the_sidecar_id_column() {
    let got = diagnostics(&[
        (
            "queries/plan.sql",
            "SELECT 'a@x.com' AS emial, 'gold' AS plan\n",
        ),
        (
            "queries/plan.yaml",
            "description: Plan from the CRM.\nid_column: emial\n",
        ),
    ])
    .await;
    assert_eq!(
        got,
        [
            "error: queries/plan.yaml:2:12: id_column `emial` of SQL trait `plan` is not an \
          identifier type of the space"
        ]
    );
    let tmp = tempfile::tempdir().unwrap();
    space_dir(
        tmp.path(),
        &[
            ("queries/plan.sql", "SELECT 1 AS x\n"),
            ("queries/plan.yaml", "id_column: emial\n"),
        ],
    );
    let v = cohort::analyze::validate_space(tmp.path()).await;
    assert_eq!(
        v.diagnostics[0].help.as_deref(),
        Some("did you mean `email`?")
    );
}

#[test]
fn schedule_defaults_to_every_twelve_hours() {
    let mut def = sql_def("plan", "SELECT 1");
    assert_eq!(sql_trait_schedule(&def), "0 */12 * * *");
    assert_eq!(DEFAULT_SQL_TRAIT_SCHEDULE, "0 */12 * * *");
    def.schedule = Some("0 3 * * *".into());
    assert_eq!(sql_trait_schedule(&def), "0 3 * * *");
}

fn sql_def(key: &str, sql: &str) -> SqlTraitDef {
    SqlTraitDef {
        key: key.into(),
        file: format!("queries/{key}.sql").into(),
        sql: sql.into(),
        id_column: None,
        id_column_loc: None,
        schedule: None,
        description: None,
        timeout: None,
    }
}

/// Events of the merge case: u1 signs in with two emails (one written in capitals) from
/// device a1; u2 orders from device a2.
fn write_events(dir: &Path) {
    let row = |m: &'static str,
               ty: &'static str,
               ev: Option<&'static str>,
               u: Option<&'static str>,
               a: Option<&'static str>,
               t: &'static str,
               traits: Option<&'static str>| {
        vec![
            Some(m),
            Some(ty),
            ev,
            u,
            a,
            None,
            None,
            Some(t),
            None,
            traits,
            None,
        ]
    };
    write_text_parquet(
        &dir.join("data/dt=2026-01-01/events.parquet"),
        &EVENT_COLUMNS,
        &[
            row(
                "m1",
                "identify",
                None,
                Some("u1"),
                Some("a1"),
                "2026-01-01T10:00:00Z",
                Some(r#"{"email":"Ann@X.com"}"#),
            ),
            row(
                "m2",
                "identify",
                None,
                Some("u1"),
                None,
                "2026-01-01T11:00:00Z",
                Some(r#"{"email":"ann.work@x.com"}"#),
            ),
            row(
                "m3",
                "track",
                Some("Order Completed"),
                Some("u1"),
                None,
                "2026-01-01T12:00:00Z",
                None,
            ),
            row(
                "m5",
                "track",
                Some("Order Completed"),
                Some("u1"),
                None,
                "2026-01-01T12:30:00Z",
                None,
            ),
            row(
                "m4",
                "track",
                Some("Order Completed"),
                Some("u2"),
                Some("a2"),
                "2026-01-01T13:00:00Z",
                None,
            ),
        ],
    );
}

/// A run's session up to the identity stage: `events`, `web` and the `id_*` tables.
async fn session_after_identity(space: &Space) -> SessionContext {
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let as_of = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    read::register_events(&ctx, space, as_of, None, None)
        .await
        .unwrap();
    resolve_events(
        &ctx,
        &ResolvedRules::from_spec(&space.identity),
        false,
        None,
    )
    .await
    .unwrap();
    ctx
}

/// Registers `crm (email, plan)`: a table a SQL trait reads by name.
fn register_crm(ctx: &SessionContext, rows: &[(&str, &str)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("email", DataType::Utf8, true),
        Field::new("plan", DataType::Utf8, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap();
    ctx.register_table(
        "crm",
        Arc::new(MemTable::try_new(schema, vec![vec![b]]).unwrap()),
    )
    .unwrap();
}

async fn profile_of(ctx: &SessionContext, id_type: &str, value: &str) -> String {
    let b = ctx
        .sql(&format!(
            "SELECT profile_id FROM id_identities WHERE id_type = '{id_type}' AND id_value = '{value}'"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let ids = cohort::identity::text_column(b[0].column(0)).unwrap();
    ids.value(0).to_string()
}

#[tokio::test]
async fn rows_merge_into_profiles_through_the_identity_graph() {
    let tmp = tempfile::tempdir().unwrap();
    space_dir(
        tmp.path(),
        &[
            (
                "queries/plan.sql",
                "-- the CRM's plan per email\nSELECT email, plan FROM crm\n",
            ),
            (
                "queries/orders.sql",
                "SELECT user_id, count(*) AS orders\nFROM web\n\
                 WHERE event = 'Order Completed' AND user_id IS NOT NULL\nGROUP BY user_id\n",
            ),
        ],
    );
    write_events(tmp.path());
    let space = load(tmp.path()).await;
    let ctx = session_after_identity(&space).await;
    register_crm(
        &ctx,
        &[
            (" ANN@x.com ", "gold"),      // normalized like the identity stage: ann@x.com
            ("ann.work@x.com", "silver"), // the same profile: the smallest value wins
            ("new@x.com", "bronze"),      // unknown: starts a profile
            ("unknown", "lead"),          // blocked: skipped
        ],
    );
    let p1 = profile_of(&ctx, "user_id", "u1").await;
    let p2 = profile_of(&ctx, "user_id", "u2").await;
    assert_eq!(p1, profile_of(&ctx, "email", "ann@x.com").await);
    let new = new_profile_id(node_code("email", "new@x.com"));

    let results = run_sql_traits(&ctx, &space).await.unwrap();
    let keys: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["orders", "plan"]);
    let orders = &results[0];
    assert_eq!(orders.table, "sqltrait_orders");
    assert_eq!(orders.id_type, "user_id");
    assert_eq!(orders.columns, [("orders".to_string(), DataType::Int64)]);
    assert_eq!(
        (orders.rows, orders.profiles, orders.new_profiles),
        (2, 2, 0)
    );
    let plan = &results[1];
    assert_eq!(plan.id_type, "email");
    assert_eq!(
        (plan.rows, plan.skipped, plan.profiles, plan.new_profiles),
        (4, 1, 2, 1)
    );

    let mut expected = vec![
        vec![p1.clone(), "silver".into()],
        vec![new, "bronze".into()],
    ];
    expected.sort();
    assert_eq!(
        rows(
            &ctx,
            "SELECT profile_id, plan FROM sqltrait_plan ORDER BY profile_id"
        )
        .await,
        expected,
        "u1's profile keeps its smallest email's row; u2's profile has no plan"
    );
    assert_eq!(
        rows(
            &ctx,
            "SELECT profile_id, orders FROM sqltrait_orders ORDER BY orders DESC"
        )
        .await,
        [vec![p1, "2".to_string()], vec![p2, "1".to_string()]]
    );
}

/// Every cell of `sql`'s result as text.
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut out = Vec::new();
    for b in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        for i in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, i).unwrap())
                    .collect(),
            );
        }
    }
    out
}

/// A session with the identity stage's tables over the merge case's events.
async fn contract_session() -> (tempfile::TempDir, SessionContext, ResolvedRules) {
    let tmp = tempfile::tempdir().unwrap();
    space_dir(tmp.path(), &[]);
    write_events(tmp.path());
    let space = load(tmp.path()).await;
    let ctx = session_after_identity(&space).await;
    (tmp, ctx, ResolvedRules::from_spec(&space.identity))
}

async fn contract_error(
    ctx: &SessionContext,
    rules: &ResolvedRules,
    key: &str,
    sql: &str,
) -> String {
    run_sql_trait(ctx, rules, &sql_def(key, sql))
        .await
        .expect_err("the trait breaks the contract")
        .to_string()
}

#[tokio::test]
async fn results_that_break_the_contract_are_errors() {
    let (_tmp, ctx, rules) = contract_session().await;
    assert_eq!(
        contract_error(
            &ctx,
            &rules,
            "two_ids",
            "SELECT 'u1' AS user_id, 'a@x.com' AS email, 1 AS n"
        )
        .await,
        "SQL trait `two_ids` (queries/two_ids.sql): the query returns 2 identifier columns \
         (`user_id`, `email`); return exactly one, or name the identifier in `id_column` of \
         queries/two_ids.yaml"
    );
    assert_eq!(
        contract_error(&ctx, &rules, "no_id", "SELECT 'u1' AS uid, 1 AS n").await,
        "SQL trait `no_id` (queries/no_id.sql): the query returns no identifier column; name \
         exactly one column after an identifier type of the space (user_id, email, anonymous_id)"
    );
    let wide = (1..=26)
        .map(|i| format!("{i} AS t{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        contract_error(
            &ctx,
            &rules,
            "wide",
            &format!("SELECT 'u1' AS user_id, {wide}")
        )
        .await,
        "SQL trait `wide` (queries/wide.sql): the query returns 26 trait columns besides \
         `user_id`; at most 25 are allowed"
    );
    // 25 are fine.
    let fine = (1..=25)
        .map(|i| format!("{i} AS t{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let r = run_sql_trait(
        &ctx,
        &rules,
        &sql_def("fine", &format!("SELECT 'u1' AS user_id, {fine}")),
    )
    .await
    .unwrap();
    assert_eq!(r.columns.len(), 25);
    assert_eq!(
        contract_error(
            &ctx,
            &rules,
            "nulls",
            "SELECT * FROM (VALUES ('u1', 1), (NULL, 2), (NULL, 3)) AS t(user_id, n)"
        )
        .await,
        "SQL trait `nulls` (queries/nulls.sql): 2 of 3 rows have a null `user_id`; every row \
         needs an identifier (filter them out with `WHERE user_id IS NOT NULL`)"
    );
    // 12 duplicated values (two differ only in case, which normalization removes): the error
    // names the first 10 and counts them all.
    let mut values: Vec<String> = (1..=11).map(|i| format!("('d{i:02}@x.com')")).collect();
    values.extend(values.clone());
    values.push("('Twice@x.com')".into());
    values.push("('twice@x.com')".into());
    values.push("('once@x.com')".into());
    assert_eq!(
        contract_error(
            &ctx,
            &rules,
            "dups",
            &format!(
                "SELECT email, 'p' AS plan FROM (VALUES {}) AS t(email)",
                values.join(", ")
            )
        )
        .await,
        "SQL trait `dups` (queries/dups.sql): 12 `email` values appear in more than one row: \
         `d01@x.com` (2 rows), `d02@x.com` (2 rows), `d03@x.com` (2 rows), `d04@x.com` (2 rows), \
         `d05@x.com` (2 rows), `d06@x.com` (2 rows), `d07@x.com` (2 rows), `d08@x.com` (2 rows), \
         `d09@x.com` (2 rows), `d10@x.com` (2 rows), ...; each identifier may have one row \
         (aggregate with GROUP BY email)"
    );
}

#[tokio::test]
async fn the_run_refuses_what_validate_refuses() {
    let (_tmp, ctx, rules) = contract_session().await;
    assert_eq!(
        contract_error(&ctx, &rules, "drop_it", "DROP TABLE web").await,
        "SQL trait `drop_it` (queries/drop_it.sql) is refused: `DROP` changes the catalog; \
         only a read-only query is allowed"
    );
    assert_eq!(
        contract_error(
            &ctx,
            &rules,
            "csv",
            "SELECT * FROM (SELECT 1) s JOIN read_csv('/etc/passwd') p ON true"
        )
        .await,
        "SQL trait `csv` (queries/csv.sql) is refused: `read_csv(...)` in FROM is a \
         table function, which can read files or URLs; query the space's registered tables \
         by name"
    );
    assert!(ctx.table_exist("web").unwrap(), "nothing was dropped");
}

/// In a run, SQL trait columns land in the published `profiles`: an identifier no event has
/// carried starts a profile (its identifier in the id column, never seen), and a profile absent
/// from the next result loses the trait.
#[tokio::test]
async fn a_run_publishes_sql_traits_and_profiles_absent_from_the_result_lose_them() {
    let tmp = tempfile::tempdir().unwrap();
    let vip = |emails: &[&str]| {
        let rows: Vec<String> = emails
            .iter()
            .map(|e| format!("SELECT '{e}' AS email, true AS vip"))
            .collect();
        rows.join("\nUNION ALL\n") + "\n"
    };
    space_dir(
        tmp.path(),
        &[
            ("queries/vip.sql", &vip(&["Ann@X.com", "new@x.com"])),
            (
                "queries/orders.sql",
                "SELECT user_id, count(*) AS lifetime_orders\nFROM web\n\
                 WHERE event = 'Order Completed' AND user_id IS NOT NULL\nGROUP BY user_id\n",
            ),
        ],
    );
    write_events(tmp.path());
    let as_of = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let opts = cohort::run::RunOptions {
        as_of: Some(as_of),
        ..Default::default()
    };
    let published = |space: Space| async move {
        let ctx = read::query_session(&space, as_of).await.unwrap();
        rows(
            &ctx,
            "SELECT coalesce(user_id, '-'), coalesce(array_to_string(email, ','), '-'), \
             coalesce(CAST(vip AS VARCHAR), '-'), coalesce(CAST(lifetime_orders AS VARCHAR), '-'), \
             coalesce(CAST(first_seen AS VARCHAR), 'never') \
             FROM profiles ORDER BY 1, 2",
        )
        .await
    };
    let space = load(tmp.path()).await;
    let r = run::run(&space, &opts, &run::Quiet).await.unwrap().record;
    let stats = r.profiles.unwrap();
    assert_eq!(stats.sql_traits["vip"], "Boolean");
    assert_eq!(stats.sql_trait_profiles, 1);
    let got = published(space).await;
    let row = |u: &str, e: &str, v: &str, o: &str, seen: bool| -> Vec<String> {
        let seen = if seen { "" } else { "never" };
        vec![u.into(), e.into(), v.into(), o.into(), seen.into()]
    };
    let strip = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|mut r| {
                if r[4] != "never" {
                    r[4].clear();
                }
                r
            })
            .collect()
    };
    assert_eq!(
        strip(got),
        [
            row("-", "new@x.com", "true", "-", false),
            row("u1", "ann.work@x.com,ann@x.com", "true", "2", true),
            row("u2", "-", "-", "1", true),
        ]
    );

    // The next result no longer has Ann: her profile loses `vip`; the started profile stays.
    std::fs::write(tmp.path().join("queries/vip.sql"), vip(&["new@x.com"])).unwrap();
    let space = load(tmp.path()).await;
    run::run(&space, &opts, &run::Quiet).await.unwrap();
    assert_eq!(
        strip(published(space).await),
        [
            row("-", "new@x.com", "true", "-", false),
            row("u1", "ann.work@x.com,ann@x.com", "-", "2", true),
            row("u2", "-", "-", "1", true),
        ]
    );
}
