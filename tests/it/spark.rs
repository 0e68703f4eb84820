//! The whole space on Apache Spark: `cohort compile --dialect spark --script` run in PySpark's
//! Spark 4 (`local[2]`, on the machine's Java 17) over the same generated data a Cohort run
//! read, every table it writes compared with the table the run published (the comparison of
//! `space_sql.rs`).

use std::path::Path;
use std::process::Command;

use cohort::spec::Preset;

use super::common;
use super::space_sql::{
    Edits, check_space, check_space_with, compared_tables, copy_space, repairs_over,
};

/// The starter space: computed traits, a SQL trait, account traits, six audiences, here with
/// a repair of every kind and per-period limits its events break; run statement by statement
/// through `spark.sql(...)` and as a whole with `spark-sql -f`.
#[tokio::test]
async fn the_store_space_runs_unchanged_on_spark() {
    check_space_with(
        "examples/spaces/store",
        6_000,
        &["spark", "spark-sql"],
        None,
        Edits {
            repairs: true,
            periods: true,
        },
    )
    .await;
}

/// The benchmark space: 21 computed traits, 2 SQL traits, 30 audiences of every kind.
#[tokio::test]
async fn the_bench_space_runs_unchanged_on_spark() {
    check_space("benches/space", 6_000, &["spark"], None).await;
}

/// `cohort` run in `dir` (the space folder, as a user in it would) with the venv's
/// `spark-submit` on the PATH; its output when it succeeds.
fn cohort_in(dir: &Path, args: &[&str]) -> String {
    let venv_bin = Path::new(&common::python()).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(venv_bin).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let o = Command::new(common::cohort_bin())
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "cohort {args:?} failed:\n{text}");
    text
}

/// The tables two runs published, compared row for row (`space_sql.py delta`).
fn same_tables(tmp: &Path, a: &Path, b: &Path, tables: &[&str]) {
    let tool = tmp.join("space_sql.py");
    std::fs::write(&tool, include_str!("space_sql.py")).unwrap();
    let o = Command::new(common::python())
        .arg(&tool)
        .arg("delta")
        .arg(a)
        .arg(b)
        .arg("--tables")
        .arg(tables.join(","))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "the tables differ:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with("rows identical"))
            .count(),
        tables.len(),
        "{out}"
    );
}

/// `cohort run --on spark`, started in the space's folder with PySpark's spark-submit on the
/// PATH, publishes what a local run publishes: the same tables (`identity_repairs` too, the
/// space having a repair of every kind), the same CSV exports. A second
/// run on Spark, later, keeps the members' `entered_at` and appends only what changed, as the
/// local run at the same as-of does; a local run after it starts again from the sources.
#[tokio::test]
async fn cohort_run_on_spark_publishes_what_a_local_run_publishes() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let spark = tmp.path().join("spark");
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spaces/store");
    copy_space(&from, &local);
    common::generate(Preset::Events, 6_000, 17, &local.join("data/events")).await;
    let repairs = repairs_over(&local.join("data/events")).await;
    std::fs::write(local.join("repairs.yaml"), &repairs).unwrap();
    copy_space(&from, &spark);
    std::fs::write(spark.join("repairs.yaml"), &repairs).unwrap();
    std::fs::create_dir_all(spark.join("data")).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(local.join("data/events"))
        .arg(spark.join("data/"))
        .status()
        .unwrap();
    assert!(copied.success());
    let name = common::load(&local).await.name;
    let (a, b) = (local.join("out").join(&name), spark.join("out").join(&name));
    let mut tables: Vec<&str> = compared_tables();
    tables.push("profile_merges");
    tables.push("identity_repairs");

    let first = common::gen_end() - chrono::Duration::days(30);
    let second = common::gen_end();
    for (i, as_of) in [first, second].iter().enumerate() {
        let as_of = as_of.to_rfc3339();
        cohort_in(&local, &["run", "--as-of", &as_of]);
        let said = cohort_in(&spark, &["run", "--on", "spark", "--as-of", &as_of]);
        assert!(said.contains("spark-submit"), "{said}");
        assert!(said.contains("stages: compile"), "{said}");
        assert!(
            !said.contains(": 0 events"),
            "the run counts Spark's events: {said}"
        );
        same_tables(tmp.path(), &a, &b, &tables);
        let runs = cohort_in(&spark, &["runs"]);
        assert_eq!(
            runs.matches("manual: cli, on spark").count(),
            i + 1,
            "{runs}"
        );
    }
    // Readers see the same audiences: the exports are byte for byte a local run's.
    for audience in [
        "browsed_not_added",
        "lapsed_customers",
        "active_big_accounts",
    ] {
        let export = |dir: &Path| {
            let args = [
                "export", ".", audience, "--format", "indexed", "--out", "x.csv",
            ];
            cohort_in(dir, &args);
            std::fs::read_to_string(dir.join("x.csv")).unwrap()
        };
        let (l, s) = (export(&local), export(&spark));
        assert!(
            l.lines().count() > 1,
            "{audience}: no members, a weak check"
        );
        assert_eq!(l, s, "{audience}");
    }
    // A local run after a run on Spark reads the sources again and succeeds.
    let said = cohort_in(&spark, &["run", "--as-of", &second.to_rfc3339()]);
    assert!(said.contains("published to"), "{said}");
}
