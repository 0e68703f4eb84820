//! The whole space on Apache Spark: `cohort compile --dialect spark --script` run in PySpark's
//! Spark 4 (`local[2]`, on the machine's Java 17) over the same generated data a Cohort run
//! read, every table it writes compared with the table the run published (the comparison of
//! `space_sql.rs`).

use super::space_sql::check_space;

/// The starter space: computed traits, a SQL trait, account traits, six audiences.
#[tokio::test]
async fn the_store_space_runs_unchanged_on_spark() {
    check_space("examples/spaces/store", 6_000, &["spark"], None).await;
}

/// The benchmark space: 21 computed traits, 2 SQL traits, 30 audiences of every kind.
#[tokio::test]
async fn the_bench_space_runs_unchanged_on_spark() {
    check_space("benches/space", 6_000, &["spark"], None).await;
}
