//! `cohort compile`: the computed traits of the starter space as plans and SQL, snapshotted, so
//! that a change to how traits compile shows up in review; and the one-aggregation promise.

use cohort::script::unparse::{SqlDialect, render_space};

use crate::common::load;

async fn starter_space() -> (tempfile::TempDir, cohort::spec::Space) {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, text) in cohort::spec::init_files() {
        let p = tmp.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(tmp.path().join("data/events")).unwrap();
    let space = load(tmp.path()).await;
    (tmp, space)
}

fn as_of() -> i64 {
    cohort::cli::parse_time("2026-11-01")
        .unwrap()
        .timestamp_micros()
}

#[tokio::test]
async fn compiled_traits_of_the_starter_space() {
    let (_tmp, space) = starter_space().await;
    for d in [
        SqlDialect::DataFusion,
        SqlDialect::DuckDb,
        SqlDialect::Postgres,
    ] {
        let text = render_space(&space, d, as_of()).unwrap();
        insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("compile_starter_{}", d.as_str()), text);
        });
    }
}

#[tokio::test]
async fn every_user_trait_is_one_column_of_one_aggregation() {
    let (_tmp, space) = starter_space().await;
    let text = render_space(&space, SqlDialect::DataFusion, as_of()).unwrap();
    let fused = text
        .split("-- every computed trait of users in one aggregation")
        .nth(1)
        .expect("a fused users plan");
    let plan = fused.split("-- sql:").next().unwrap();
    assert_eq!(plan.matches("Aggregate:").count(), 1, "{plan}");
    assert_eq!(plan.matches("TableScan:").count(), 1, "{plan}");
    let users = space
        .traits
        .iter()
        .filter(|t| t.entity == cohort::spec::EntityType::Users);
    for t in users {
        assert!(
            plan.contains(&format!(" AS {}", t.key)),
            "{} missing",
            t.key
        );
    }
}

#[tokio::test]
async fn a_trait_that_cannot_compile_names_its_file_line_and_column() {
    let (tmp, _) = starter_space().await;
    std::fs::write(
        tmp.path().join("traits/funnel.yaml"),
        "query: \"event('A').where(event('B').count() >= 1).count()\"\n",
    )
    .unwrap();
    let v = cohort::analyze::validate_space(tmp.path()).await;
    assert!(
        v.space.is_none(),
        "a funnel in a trait is refused at validate time"
    );
    let text: Vec<String> = v.diagnostics.iter().map(|d| d.render(tmp.path())).collect();
    let text = text.join("\n");
    // The nested event starts 17 bytes into the text, which starts at column 9.
    assert!(text.contains("traits/funnel.yaml:1:26"), "{text}");
    assert!(
        text.contains("1 | query: \"event('A').where(event('B')"),
        "{text}"
    );
    assert!(text.contains("funnel"), "{text}");
}
