//! `cohort promote <dev> <prod>`, driven as a user does from the folder that holds both
//! spaces: a dev space with an edited audience, a new trait and an audience whose key prod
//! retired; a SQL trait reading a table prod does not have.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{cohort_bin, write_text_parquet};

const COLUMNS: [&str; 5] = ["message_id", "type", "event", "user_id", "timestamp"];

/// A space `name` in `dir` with one source `source` of a few `Signed Up` events.
fn space(dir: &Path, name: &str, source: &str) {
    let rows: Vec<Vec<Option<&str>>> = (0..3)
        .map(|i| {
            vec![
                Some(["m0", "m1", "m2"][i]),
                Some("track"),
                Some("Signed Up"),
                Some(["u0", "u1", "u1"][i]),
                Some("2026-10-01T09:00:00Z"),
            ]
        })
        .collect();
    write_text_parquet(
        &dir.join("data/dt=2026-10-01/part-0.parquet"),
        &COLUMNS,
        &rows,
    );
    std::fs::write(
        dir.join("space.yaml"),
        format!(
            "name: {name}\nspec_version: 1\nsources:\n  - name: {source}\n    preset: events\n    \
             url: ./data\noutput: ./out\n"
        ),
    )
    .unwrap();
    file(
        dir,
        "audiences/signed_up.yaml",
        "name: Signed Up\nquery: \"event('Signed Up').count() >= 1\"\n",
    );
}

fn file(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn cohort(cwd: &Path, args: &[&str]) -> Output {
    Command::new(cohort_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn promote_an_edited_audience_and_a_new_trait() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (dev, prod) = (root.join("dev"), root.join("prod"));
    space(&prod, "prod", "site");
    file(
        &prod,
        "audiences/old_promo.yaml",
        "name: Old Promo\nquery: \"event('Signed Up').count() >= 5\"\n",
    );
    crate::live::cohort(root, &["run", "prod", "--as-of", "2026-11-01"]);
    // Prod retires `old_promo`.
    std::fs::remove_file(prod.join("audiences/old_promo.yaml")).unwrap();
    crate::live::cohort(root, &["run", "prod", "--as-of", "2026-11-01"]);

    space(&dev, "dev", "site");
    file(
        &dev,
        "audiences/signed_up.yaml",
        "name: Signed Up\nquery: \"event('Signed Up').count() >= 2\"\n",
    );
    file(
        &dev,
        "traits/signups.yaml",
        "query: \"event('Signed Up').count()\"\n",
    );
    file(
        &dev,
        "audiences/old_promo.yaml",
        "name: Old Promo\nquery: \"event('Signed Up').count() >= 1\"\n",
    );
    let prod_audience = std::fs::read_to_string(prod.join("audiences/signed_up.yaml")).unwrap();

    // The retired key is refused, naming its file; nothing is written.
    let out = cohort(root, &["promote", "dev", "prod", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("audiences/old_promo.yaml"), "{err}");
    assert!(
        err.contains("audience key `old_promo` was retired in prod"),
        "{err}"
    );
    assert!(!prod.join("traits/signups.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(prod.join("audiences/signed_up.yaml")).unwrap(),
        prod_audience
    );

    // A SQL trait over a table prod does not have is refused at its place.
    std::fs::remove_file(dev.join("audiences/old_promo.yaml")).unwrap();
    file(
        &dev,
        "queries/first_seen.sql",
        "SELECT user_id, min(timestamp) AS first_signup\nFROM web_events\nGROUP BY user_id\n",
    );
    let out = cohort(root, &["promote", "dev", "prod", "--dry-run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("queries/first_seen.sql:2:6"), "{err}");
    assert!(
        err.contains("reads table `web_events`, which prod does not have"),
        "{err}"
    );
    std::fs::remove_file(dev.join("queries/first_seen.sql")).unwrap();

    // The diff, then nothing written without --yes off a terminal.
    let diff = crate::live::cohort(root, &["promote", "dev", "prod", "--dry-run"]);
    assert!(diff.contains("2 file(s) to write"), "{diff}");
    assert!(diff.contains("~ audiences/signed_up.yaml"), "{diff}");
    assert!(
        diff.contains("- query: \"event('Signed Up').count() >= 1\""),
        "{diff}"
    );
    assert!(
        diff.contains("+ query: \"event('Signed Up').count() >= 2\""),
        "{diff}"
    );
    assert!(diff.contains("+ traits/signups.yaml (new)"), "{diff}");
    assert!(diff.contains("--dry-run: nothing was written"), "{diff}");
    assert!(!prod.join("traits/signups.yaml").exists());
    let out = cohort(root, &["promote", "dev", "prod"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));

    let done = crate::live::cohort(root, &["promote", "dev", "prod", "--yes"]);
    assert!(done.contains("wrote 2 file(s) into prod"), "{done}");
    assert_eq!(
        std::fs::read_to_string(prod.join("traits/signups.yaml")).unwrap(),
        "query: \"event('Signed Up').count()\"\n"
    );
    // prod keeps its own space.yaml, validates and runs with what it got.
    assert!(
        std::fs::read_to_string(prod.join("space.yaml"))
            .unwrap()
            .contains("name: prod")
    );
    crate::live::cohort(root, &["run", "prod", "--as-of", "2026-11-01"]);
    let again = crate::live::cohort(root, &["promote", "dev", "prod", "--dry-run"]);
    assert!(again.contains("nothing to promote"), "{again}");

    // A definition only prod has stays, unless --delete removes it.
    file(
        &prod,
        "audiences/prod_only.yaml",
        "name: Prod Only\nquery: \"event('Signed Up').count() >= 3\"\n",
    );
    let kept = crate::live::cohort(root, &["promote", "dev", "prod", "--yes"]);
    assert!(
        kept.contains(
            "= audiences/prod_only.yaml (only in prod: left as it is; --delete removes it)"
        ),
        "{kept}"
    );
    assert!(kept.contains("nothing to promote"), "{kept}");
    assert!(prod.join("audiences/prod_only.yaml").exists());
    let shown = crate::live::cohort(root, &["promote", "dev", "prod", "--delete", "--dry-run"]);
    assert!(shown.contains("0 file(s) to write, 1 to remove"), "{shown}");
    assert!(
        shown.contains("- audiences/prod_only.yaml (only in prod: removed)"),
        "{shown}"
    );
    assert!(prod.join("audiences/prod_only.yaml").exists());
    let done = crate::live::cohort(root, &["promote", "dev", "prod", "--delete", "--yes"]);
    assert!(
        done.contains("wrote 0 file(s) into prod, removed 1"),
        "{done}"
    );
    assert!(!prod.join("audiences/prod_only.yaml").exists());
    assert!(prod.join("audiences/signed_up.yaml").exists());
    crate::live::cohort(root, &["run", "prod", "--as-of", "2026-11-01"]);
}
