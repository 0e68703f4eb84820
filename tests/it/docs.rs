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

/// Fenced blocks of a Markdown file whose info string is `lang`.
fn blocks_of(markdown: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() != format!("```{lang}") {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push(body.join("\n"));
    }
    out
}

/// Every query on the query-language page parses as what its block says it is.
#[test]
fn query_language_examples_parse() {
    use cohort::spec::{EntityType, parse_audience_query, parse_trait_query};
    let md = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/query-language.md"),
    )
    .unwrap();
    let traits = blocks_of(&md, "cohort-trait");
    let audiences = blocks_of(&md, "cohort-audience");
    let accounts = blocks_of(&md, "cohort-account-audience");
    assert!(traits.len() >= 8 && audiences.len() >= 7 && accounts.len() >= 2);
    for q in &traits {
        parse_trait_query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(parse_audience_query(q, EntityType::Users).is_err(), "{q}");
    }
    for q in &audiences {
        parse_audience_query(q, EntityType::Users).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    for q in &accounts {
        parse_audience_query(q, EntityType::Accounts).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(parse_audience_query(q, EntityType::Users).is_err(), "{q}");
    }
}
