//! The identity stage as SQL text (`script::sql_identity`, for `cohort compile --script`)
//! against the engine: the same `id_occurrences` rows go through the engine's stage and
//! through the SQL in DuckDB and in a real PostgreSQL server; all four output tables must hold
//! identical rows. Random event sets (those of `identity.rs`) break limits often, under several
//! types, limits and priorities, and, spread over ten days, per-period limits (`1 daily`,
//! `2 weekly`) that only the windows decide.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cohort::plan::identity::ResolvedRules;
use cohort::run::identity::resolve_events;
use cohort::run::session::{SessionOptions, new_session};
use cohort::script::sql_identity;
use cohort::script::unparse::SqlDialect;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::catalog::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::common;
use crate::identity::{Ev, Rng, Types, events_batch, ever, over_days, random_case, rules};
use crate::pg::PgServer;
use cohort::spec::LimitPeriod::{Daily, Weekly};

type Rows = Vec<Vec<Value>>;

const SCRIPT: &str = include_str!("identity_sql.py");

/// The engine's output tables, in the shape `identity_sql.py` writes them.
const ENGINE_QUERIES: [(&str, &str); 4] = [
    ("id_components", "SELECT node, component FROM id_components"),
    (
        "id_identities",
        "SELECT profile_id, id_type, id_value, CAST(first_seen AS BIGINT), \
         CAST(last_seen AS BIGINT) FROM id_identities",
    ),
    (
        "id_event_profiles",
        "SELECT message_id, profile_id FROM id_event_profiles",
    ),
    (
        "id_violations",
        "SELECT message_id, CAST(timestamp AS BIGINT), id_type, id_value, rule, detail, \
         profile_id FROM id_violations",
    ),
];

fn rows_of(batches: &[RecordBatch]) -> Rows {
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                if c.data_type().is_integer() {
                    datafusion::arrow::compute::cast(c, &DataType::Int64).unwrap()
                } else {
                    datafusion::arrow::compute::cast(c, &DataType::Utf8).unwrap()
                }
            })
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .map(|c| {
                        if c.is_null(i) {
                            Value::Null
                        } else if c.data_type() == &DataType::Int64 {
                            Value::from(c.as_primitive::<Int64Type>().value(i))
                        } else {
                            Value::from(c.as_string::<i32>().value(i))
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

fn sorted(mut rows: Rows) -> Rows {
    rows.sort_by_key(|r| serde_json::to_string(r).unwrap());
    rows
}

/// Runs the engine's stage; writes its `id_occurrences` rows to `occ` and returns its tables.
async fn engine_tables(
    ctx: &SessionContext,
    rules: &ResolvedRules,
    occ: &Path,
    queries: &[(&str, &str)],
) -> BTreeMap<String, Rows> {
    let (stats, _) = resolve_events(ctx, rules, false, None).await.unwrap();
    let _ = stats;
    let batches = ctx
        .sql("SELECT * FROM id_occurrences")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let schema = batches
        .first()
        .map(|b| b.schema())
        .expect("some occurrences");
    let mut w = ArrowWriter::try_new(std::fs::File::create(occ).unwrap(), schema, None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    let mut out = BTreeMap::new();
    for (name, q) in queries {
        let b = ctx.sql(q).await.unwrap().collect().await.unwrap();
        out.insert(name.to_string(), sorted(rows_of(&b)));
    }
    out
}

/// Runs the SQL in `dialect` through the interop venv's Python on the rows in `occ`.
fn sql_tables(
    dir: &Path,
    dialect: SqlDialect,
    rules: &ResolvedRules,
    occ: &Path,
    pg: Option<String>,
) -> BTreeMap<String, Rows> {
    let mut stmts = sql_identity::functions(dialect).unwrap();
    stmts.extend(sql_identity::statements(dialect, &rules.types).unwrap());
    let tag = dialect.as_str();
    let stmts_path = dir.join(format!("{tag}.json"));
    std::fs::write(&stmts_path, serde_json::to_string(&stmts).unwrap()).unwrap();
    std::fs::write(dir.join(format!("{tag}.sql")), stmts.join(";\n\n")).unwrap();
    let script = dir.join("identity_sql.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out_path = dir.join(format!("{tag}-out.json"));
    let mut cmd = std::process::Command::new(common::python());
    cmd.arg(&script)
        .arg(tag)
        .arg(occ)
        .arg(&stmts_path)
        .arg(&out_path);
    if let Some(dsn) = pg {
        cmd.arg(dsn);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{tag} run failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: BTreeMap<String, Rows> =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    v.into_iter().map(|(k, r)| (k, sorted(r))).collect()
}

fn compare(tag: &str, want: &BTreeMap<String, Rows>, got: &BTreeMap<String, Rows>) {
    assert!(
        got["node_mismatches"].is_empty(),
        "{tag}: cohort_id_node differs from node_code: {:?}",
        &got["node_mismatches"][..got["node_mismatches"].len().min(5)]
    );
    for r in &got["profile_names"] {
        let node = r[0].as_i64().unwrap();
        assert_eq!(
            r[1].as_str().unwrap(),
            cohort::identity::new_profile_id(node),
            "{tag}: cohort_id_profile({node})"
        );
    }
    for (name, w) in want {
        let g = &got[name];
        if g != w {
            let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(8).collect();
            let extra: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(8).collect();
            panic!(
                "{tag}: {name} differs from the engine ({} rows vs {}):\n  missing: {missing:?}\n  extra: {extra:?}",
                w.len(),
                g.len()
            );
        }
    }
}

/// What `check` asks of the engine's own tables before comparing.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// No limit breaks: components only.
    NoViolations,
    /// Some limit breaks.
    Violations,
    /// Some per-period limit breaks.
    WindowedViolations,
}

async fn check(evs: &[Ev], types: &Types, pg: &PgServer, expect: Expect) {
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let b = events_batch(evs);
    ctx.register_table(
        "events",
        Arc::new(MemTable::try_new(b.schema(), vec![vec![b]]).unwrap()),
    )
    .unwrap();
    let rules = rules(types);
    let dir = tempfile::tempdir().unwrap();
    if std::env::var("COHORT_KEEP_TEST_DIRS").is_ok() {
        eprintln!("identity_sql: keeping {}", dir.path().display());
    }
    let occ = dir.path().join("occurrences.parquet");
    let want = engine_tables(&ctx, &rules, &occ, &ENGINE_QUERIES).await;
    let limit_details: Vec<&str> = want["id_violations"]
        .iter()
        .filter(|r| r[4] == "limit")
        .filter_map(|r| r[5].as_str())
        .collect();
    match expect {
        Expect::NoViolations => assert!(limit_details.is_empty()),
        Expect::Violations => assert!(
            !limit_details.is_empty(),
            "the random cases should break limits"
        ),
        Expect::WindowedViolations => assert!(
            limit_details.iter().any(|d| d.contains("added within")),
            "the random cases should break per-period limits"
        ),
    }
    let duck = sql_tables(dir.path(), SqlDialect::DuckDb, &rules, &occ, None);
    compare("duckdb", &want, &duck);
    // A fresh database per check whose default collation is not byte order (ICU en-US sorts
    // `a` before `B`), so the script must order strings as the engine does on its own.
    pg.psql("DROP DATABASE IF EXISTS ids");
    pg.psql(
        "CREATE DATABASE ids TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu \
         ICU_LOCALE 'en-US' LOCALE 'C'",
    );
    let post = sql_tables(
        dir.path(),
        SqlDialect::Postgres,
        &rules,
        &occ,
        Some(pg.dsn_for("ids")),
    );
    compare("postgres", &want, &post);
    if std::env::var("COHORT_KEEP_TEST_DIRS").is_ok() {
        let _ = dir.keep();
    }
}

fn random_events(seed: u64, cases: usize) -> Vec<Ev> {
    let mut rng = Rng(seed);
    (0..cases).flat_map(|c| random_case(&mut rng, c)).collect()
}

/// [`random_events`], each case's events spread over ten days in half-day steps.
fn random_events_over_days(seed: u64, cases: usize) -> Vec<Ev> {
    let mut rng = Rng(seed);
    (0..cases)
        .flat_map(|c| {
            let evs = random_case(&mut rng, c);
            over_days(&mut rng, evs)
        })
        .collect()
}

/// Spells identifiers and message ids so that byte order and a natural-language collation
/// disagree (upper case, punctuation) and node codes hash non-ASCII UTF-8; a value is always
/// respelled the same way, so the events still link.
fn respelled(evs: Vec<Ev>) -> Vec<Ev> {
    let spell = |v: Option<String>| {
        v.map(|v| {
            if !v.starts_with('c') {
                return v;
            }
            match v.bytes().last().unwrap_or(b'0') % 4 {
                0 => v.to_uppercase(),
                1 => format!("{v}-\u{e9}t\u{e9}"),
                2 => format!("_{v}\u{1f642}"),
                _ => format!("{v}'q"),
            }
        })
    };
    evs.into_iter()
        .enumerate()
        .map(|(i, e)| Ev {
            message_id: match i % 3 {
                0 => e.message_id.to_uppercase(),
                1 => format!("_{}", e.message_id),
                _ => e.message_id,
            },
            user_id: spell(e.user_id),
            anonymous_id: spell(e.anonymous_id),
            ..e
        })
        .collect()
}

#[tokio::test]
async fn random_event_sets_resolve_identically_in_duckdb_and_postgres() {
    let pg = PgServer::start();
    // Tight limits break often.
    check(
        &random_events(0x9e37_79b9, 400),
        &ever(&[("user_id", 1), ("email", 2), ("anonymous_id", 2)]),
        &pg,
        Expect::Violations,
    )
    .await;
    // Segment's defaults.
    check(
        &random_events(0x1234_5678, 400),
        &ever(&[("user_id", 1), ("email", 5), ("anonymous_id", 5)]),
        &pg,
        Expect::Violations,
    )
    .await;
    // Other priorities: anonymous ids first, one email per profile.
    check(
        &random_events(0x0bad_cafe, 400),
        &ever(&[("anonymous_id", 3), ("email", 1), ("user_id", 1)]),
        &pg,
        Expect::Violations,
    )
    .await;
    // Mixed case, punctuation and non-ASCII identifiers and message ids.
    check(
        &respelled(random_events(0x7777, 400)),
        &ever(&[("user_id", 1), ("email", 2), ("anonymous_id", 2)]),
        &pg,
        Expect::Violations,
    )
    .await;
    // Per-period limits (those of `identity::per_period_limits_match_the_sequential_reference`),
    // over events spread across ten days: the windowed check and the replay's windows.
    check(
        &random_events_over_days(0x5eed_0001, 400),
        &vec![
            ("user_id", 1, None),
            ("email", 1, Some(Daily)),
            ("anonymous_id", 2, Some(Weekly)),
        ],
        &pg,
        Expect::WindowedViolations,
    )
    .await;
    check(
        &random_events_over_days(0x5eed_0002, 400),
        &vec![
            ("user_id", 1, Some(Daily)),
            ("email", 2, Some(Weekly)),
            ("anonymous_id", 1, Some(Daily)),
        ],
        &pg,
        Expect::WindowedViolations,
    )
    .await;
    // Limits that never break: components only.
    check(
        &random_events(0x5eed, 300),
        &ever(&[("user_id", 100), ("email", 100), ("anonymous_id", 100)]),
        &pg,
        Expect::NoViolations,
    )
    .await;
}

/// A generated space (the `events` preset) through a real run: the SQL in both engines, on
/// the occurrences of the run's events, gives the tables the run published.
#[tokio::test]
async fn a_real_run_publishes_what_the_sql_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    common::generate(cohort::spec::Preset::Events, 4_000, 21, &data).await;
    let dir = tmp.path().join("space");
    let url = data.to_str().unwrap();
    common::write_space(&dir, "idsql", &[("web", "events", url)], "./out");
    let space = common::load(&dir).await;
    let as_of = common::gen_end();
    let opts = cohort::run::RunOptions {
        as_of: Some(as_of),
        ..Default::default()
    };
    cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();
    // The run's events and published tables; the stage again only to read its occurrences
    // (and its event profiles, which are not published).
    let ctx = cohort::read::query_session(&space, as_of).await.unwrap();
    let rules = ResolvedRules::from_spec(&space.identity);
    let occ = tmp.path().join("occurrences.parquet");
    let published = [
        (
            "id_components",
            "SELECT node, component FROM identity_graph",
        ),
        (
            "id_identities",
            "SELECT profile_id, id_type, id_value, CAST(first_seen AS BIGINT), \
             CAST(last_seen AS BIGINT) FROM identities",
        ),
        (
            "id_event_profiles",
            "SELECT message_id, profile_id FROM id_event_profiles",
        ),
        (
            "id_violations",
            "SELECT message_id, CAST(timestamp AS BIGINT), id_type, id_value, rule, detail, \
             profile_id FROM identity_violations",
        ),
    ];
    let want = engine_tables(&ctx, &rules, &occ, &published).await;
    assert!(want["id_identities"].len() > 100, "a real data set");
    let duck = sql_tables(tmp.path(), SqlDialect::DuckDb, &rules, &occ, None);
    compare("duckdb", &want, &duck);
    let pg = PgServer::start();
    let post = sql_tables(
        tmp.path(),
        SqlDialect::Postgres,
        &rules,
        &occ,
        Some(pg.dsn()),
    );
    compare("postgres", &want, &post);
}

/// The DuckDB script for a fixed rule set, against `tests/it/snapshots/identity_duckdb.sql`
/// (regenerate with `COHORT_UPDATE_SNAPSHOTS=1`).
#[test]
fn the_duckdb_identity_script_is_stable() {
    let types = ever(&[("user_id", 1), ("email", 5), ("anonymous_id", 5)]);
    let text = sql_identity::script(SqlDialect::DuckDb, &rules(&types).types).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots/identity_duckdb.sql");
    if std::env::var("COHORT_UPDATE_SNAPSHOTS").is_ok() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        text,
        std::fs::read_to_string(&path).unwrap(),
        "the DuckDB identity script changed; review it and regenerate the snapshot with \
         COHORT_UPDATE_SNAPSHOTS=1"
    );
}
