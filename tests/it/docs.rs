//! The examples in docs/ are real: the space-format page's file blocks form a valid space.

use std::path::Path;

/// Blocks of a Markdown file whose first line is `# file: <path>` or `-- file: <path>`.
fn file_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") || line.trim() == "```" {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        if let Some(first) = body.first() {
            let name = first
                .strip_prefix("# file: ")
                .or_else(|| first.strip_prefix("-- file: "));
            if let Some(name) = name {
                out.push((name.trim().to_string(), body.join("\n") + "\n"));
            }
        }
    }
    out
}

#[tokio::test]
async fn space_format_examples_validate() {
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/space-format.md"))
            .unwrap();
    let blocks = file_blocks(&md);
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "space.yaml",
        "identity.yaml",
        "traits/total_revenue.yaml",
        "queries/lifetime_orders.sql",
        "audiences/big_spenders.yaml",
    ] {
        assert!(names.contains(&expected), "docs lack {expected}: {names:?}");
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, body) in &blocks {
        let p = tmp.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(tmp.path().join("data/events")).unwrap();
    let v = cohort::analyze::validate_space(tmp.path()).await;
    let text = cohort::spec::render_all(&v.diagnostics, tmp.path());
    assert!(v.diagnostics.is_empty(), "{text}");
    let space = v.space.expect("valid");
    assert_eq!(space.name, "acme");
    assert_eq!(space.audiences[0].name, "Big Spenders");
    assert!(!space.audiences[0].include_anonymous);
}
