//! The whole space as SQL (`cohort compile --script`): generated data run by Cohort, the same
//! data loaded into DuckDB and into a real PostgreSQL server, the script run there, and every
//! table it writes compared with the table the run published: identical rows
//! (`tests/it/space_sql.py` loads, runs and compares). Spark's tests (`spark.rs`) use the same
//! comparison.

use std::path::Path;
use std::process::Command;

use super::common;
use super::pg::PgServer;

const COMPARE: &str = include_str!("space_sql.py");
/// Cohort's driver for Spark scripts, which the comparison imports for Spark.
const SPARK_RUN: &str = include_str!("../../queries/script/spark_run.py");

/// The tables the script must leave identical to the published ones: every published table
/// but the run log and the merges (a first run merges nothing).
pub(crate) fn compared_tables() -> Vec<&'static str> {
    cohort::run::PUBLISHED_TABLES
        .into_iter()
        .filter(|t| !matches!(*t, "runs" | "profile_merges"))
        .collect()
}

/// Copies the space folder `from` (its definitions only) to `to`.
pub(crate) fn copy_space(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "data" || name == "out" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_space(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

pub(crate) fn cohort(args: &[&str]) -> Vec<u8> {
    let o = Command::new(common::cohort_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cohort {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Runs `script` in `engine` over `data` and compares with the tables under `published`;
/// returns each table's row count.
fn compare(
    dir: &Path,
    engine: &str,
    script: &Path,
    published: &Path,
    data: &Path,
    dsn: Option<String>,
) -> Vec<(String, u64)> {
    let tool = dir.join("space_sql.py");
    std::fs::write(&tool, COMPARE).unwrap();
    std::fs::write(dir.join("spark_run.py"), SPARK_RUN).unwrap();
    let mut cmd = Command::new(common::python());
    // In the test's folder: Spark writes its metastore (metastore_db/, derby.log) where it
    // starts.
    cmd.current_dir(dir)
        .arg(&tool)
        .arg(engine)
        .arg(script)
        .arg(published)
        .arg(format!("web={}", data.display()))
        .arg("--tables")
        .arg(compared_tables().join(","));
    if let Some(dsn) = dsn {
        cmd.arg("--dsn").arg(dsn);
    }
    if engine.starts_with("spark") {
        cmd.arg("--warehouse")
            .arg(dir.join(format!("{engine}-warehouse")));
    }
    let o = cmd.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{engine}: the script's tables differ from the published ones:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{engine} "))?;
            let (table, n) = rest.split_once(": ")?;
            let n = n.strip_suffix(" rows identical")?.parse().ok()?;
            Some((table.to_string(), n))
        })
        .collect()
}

/// `space` (a folder of this repository) over generated events: the script of each of
/// `engines` (PostgreSQL's needs `pg`) leaves every published table as the run published it.
pub(crate) async fn check_space(space: &str, events: u64, engines: &[&str], pg: Option<&PgServer>) {
    check_space_with(space, events, engines, pg, Edits::default()).await;
}

/// What [`check_space_with`] changes in the space before it runs it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Edits {
    /// repairs.yaml over the generated events ([`repairs_over`]).
    pub repairs: bool,
    /// Per-period limits: `2 daily` emails, `1 weekly` anonymous id (the data must break
    /// them).
    pub periods: bool,
}

/// repairs.yaml over the generated events in `data`: the most frequent anonymous id unlinked,
/// the next split, the next blocked, and a user id merged with an anonymous id no event
/// carries with a user id.
pub(crate) async fn repairs_over(data: &Path) -> String {
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet("t", data.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    let anon = common::text_rows(
        &ctx,
        "SELECT anonymous_id FROM t WHERE anonymous_id IS NOT NULL GROUP BY anonymous_id \
         ORDER BY count(*) DESC, anonymous_id LIMIT 3",
    )
    .await;
    let lone = common::text_rows(
        &ctx,
        "SELECT anonymous_id FROM t WHERE anonymous_id IS NOT NULL GROUP BY anonymous_id \
         HAVING count(user_id) = 0 ORDER BY anonymous_id LIMIT 1",
    )
    .await;
    let user =
        common::text_rows(&ctx, "SELECT min(user_id) FROM t WHERE user_id IS NOT NULL").await;
    format!(
        "- unlink: \"anonymous_id:{}\"\n  reason: r\n- split: \"anonymous_id:{}\"\n  reason: r\n\
         - block: \"anonymous_id:{}\"\n  reason: r\n\
         - merge: [\"user_id:{}\", \"anonymous_id:{}\"]\n  reason: r\n",
        anon[0], anon[1], anon[2], user[0], lone[0]
    )
}

/// [`check_space`], with the space changed as `edits` says.
pub(crate) async fn check_space_with(
    space: &str,
    events: u64,
    engines: &[&str],
    pg: Option<&PgServer>,
    edits: Edits,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("space");
    copy_space(&Path::new(env!("CARGO_MANIFEST_DIR")).join(space), &dir);
    let data = dir.join("data/events");
    common::generate(cohort::spec::Preset::Events, events, 17, &data).await;
    if edits.repairs {
        std::fs::write(dir.join("repairs.yaml"), repairs_over(&data).await).unwrap();
    }
    if edits.periods {
        let path = dir.join("identity.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text
            .replace("priority: 2, limit: 5,", "priority: 2, limit: 2 daily,")
            .replace("priority: 3, limit: 5 }", "priority: 3, limit: 1 weekly }");
        assert_eq!(
            edited.matches(" daily,").count() + edited.matches(" weekly }").count(),
            2,
            "{edited}"
        );
        std::fs::write(&path, edited).unwrap();
    }
    let as_of = common::gen_end().to_rfc3339();
    let d = dir.to_str().unwrap();
    cohort(&["run", d, "--as-of", &as_of]);
    let space_def = common::load(&dir).await;
    if edits.periods {
        let ctx = cohort::read::query_session(&space_def, common::gen_end())
            .await
            .unwrap();
        let windowed = common::text_rows(
            &ctx,
            "SELECT DISTINCT id_type FROM identity_violations \
             WHERE rule = 'limit' AND detail LIKE '%added within%' ORDER BY id_type",
        )
        .await;
        assert!(
            windowed.iter().any(|t| t == "anonymous_id"),
            "the data must break a per-period limit: {windowed:?}"
        );
    }
    let name = space_def.name;
    let published = dir.join("out").join(&name);
    for engine in engines.iter().copied() {
        // `spark-sql` runs the Spark script with `spark-sql -f`.
        let dialect = if engine == "spark-sql" {
            "spark"
        } else {
            engine
        };
        let text = cohort(&[
            "compile",
            d,
            "--dialect",
            dialect,
            "--script",
            "--as-of",
            &as_of,
        ]);
        let script = tmp.path().join(format!("{engine}.sql"));
        std::fs::write(&script, &text).unwrap();
        let dsn = pg.filter(|_| engine == "postgres").map(|pg| {
            let db = format!("space_{name}");
            pg.psql(&format!("CREATE DATABASE {db}"));
            pg.dsn_for(&db)
        });
        let counts = compare(tmp.path(), engine, &script, &published, &data, dsn);
        let tables: Vec<&str> = counts.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tables, compared_tables(), "{engine}: every table compared");
        for (table, n) in &counts {
            assert!(
                *n > 0,
                "{space} in {engine}: `{table}` is empty, a weak check"
            );
        }
    }
}

/// The starter space: computed traits, a SQL trait, account traits, six audiences.
#[tokio::test]
async fn the_store_space_runs_unchanged_in_duckdb_and_postgres() {
    let pg = PgServer::start();
    check_space(
        "examples/spaces/store",
        6_000,
        &["duckdb", "postgres"],
        Some(&pg),
    )
    .await;
}

/// The starter space with a repair of every kind: the scripts apply them as the run does.
#[tokio::test]
async fn repairs_run_unchanged_in_duckdb_and_postgres() {
    let pg = PgServer::start();
    check_space_with(
        "examples/spaces/store",
        6_000,
        &["duckdb", "postgres"],
        Some(&pg),
        Edits {
            repairs: true,
            periods: false,
        },
    )
    .await;
}

/// The starter space with per-period limits that its events break.
#[tokio::test]
async fn per_period_limits_run_unchanged_in_duckdb_and_postgres() {
    let pg = PgServer::start();
    check_space_with(
        "examples/spaces/store",
        6_000,
        &["duckdb", "postgres"],
        Some(&pg),
        Edits {
            repairs: false,
            periods: true,
        },
    )
    .await;
}

/// The benchmark space: 21 computed traits, 2 SQL traits, 30 audiences of every kind.
#[tokio::test]
async fn the_bench_space_runs_unchanged_in_duckdb_and_postgres() {
    let pg = PgServer::start();
    check_space("benches/space", 6_000, &["duckdb", "postgres"], Some(&pg)).await;
}
