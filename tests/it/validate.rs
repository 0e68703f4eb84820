//! Validate diagnostics over a gallery of broken spaces, and the starter space loading clean.

use std::path::{Path, PathBuf};

use cohort::spec::{
    Diagnostic, EntityType, Preset, Severity, SpaceLoad, init_files, load_space, render_all,
};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(kind: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures/broken").join(kind)
}

/// Loads a broken space and renders every diagnostic, with the fixture's absolute path
/// replaced so that snapshots are the same on every machine.
fn load(kind: &str) -> (SpaceLoad, String) {
    let root = fixture(kind);
    let load = load_space(&root);
    let text = render_all(&load.diagnostics, &root).replace(&root.display().to_string(), "<space>");
    (load, text)
}

/// Loads, snapshots, and checks that loading failed and that each of `expected` is in the
/// rendered text.
fn check(kind: &str, expected: &[&str]) -> SpaceLoad {
    let (load, text) = load(kind);
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(format!("broken_{kind}"), text);
    });
    assert!(load.space.is_none(), "{kind} should not load:\n{text}");
    assert!(load.has_errors(), "{kind}");
    for e in expected {
        assert!(text.contains(e), "{kind}: `{e}` not in\n{text}");
    }
    assert!(
        !text.contains(manifest_dir().to_str().unwrap()),
        "{kind}: absolute path in\n{text}"
    );
    assert!(!text.contains('\u{1b}'), "{kind}: colour codes in output");
    load
}

fn errors(load: &SpaceLoad) -> Vec<&Diagnostic> {
    load.errors().collect()
}

#[test]
fn unknown_key_suggests_the_near_miss() {
    let load = check(
        "unknown_key",
        &[
            "error: unknown key `priorty` in an identifier",
            "identity.yaml:2:38",
            "= help: did you mean `priority`?",
            "unknown key `colour`",
            "known keys: type, from, priority, limit, normalize",
        ],
    );
    assert_eq!(errors(&load).len(), 2);
    assert_eq!(errors(&load)[0].loc.as_ref().unwrap().len, "priorty".len());
}

#[test]
fn wrong_types_point_at_the_value() {
    let load = check(
        "wrong_type",
        &[
            "`from`: expected a list of strings, found an integer",
            "identity.yaml:3:11",
            "`priority`: expected a whole number, found a string",
            "`include_anonymous`: expected true or false, found a string",
            "`destinations`: expected a list of strings, found a string",
        ],
    );
    assert_eq!(errors(&load).len(), 4);
}

#[test]
fn missing_required_keys_point_at_the_mapping() {
    let load = check(
        "missing_required",
        &[
            "missing required key `url`",
            "space.yaml:4:5",
            "missing required key `query`",
            "traits/total_revenue.yaml:2:1",
        ],
    );
    assert_eq!(errors(&load).len(), 2);
}

#[test]
fn missing_space_yaml() {
    let load = check("missing_space_yaml", &["error: no space.yaml in <space>"]);
    assert_eq!(errors(&load).len(), 1);
    assert!(errors(&load)[0].loc.is_none());
}

#[test]
fn sidecar_without_sql_is_a_missing_file() {
    check(
        "sidecar_without_sql",
        &[
            "missing file queries/lifetime_orders.sql",
            "queries/lifetime_orders.yaml:1:1",
        ],
    );
}

#[test]
fn duplicate_yaml_key_points_at_the_second() {
    let load = check(
        "duplicate_yaml_key",
        &["error: duplicate key `query`", "traits/orders.yaml:3:1"],
    );
    assert_eq!(errors(&load).len(), 1);
}

#[test]
fn duplicate_source_name() {
    check(
        "duplicate_source",
        &[
            "duplicate source name `web`",
            "space.yaml:9:11",
            "already defined on line 4",
        ],
    );
}

#[test]
fn write_keys_are_distinct_and_on_events_sources_only() {
    check(
        "write_keys",
        &[
            "write key `wk two` is empty or holds a space or `:`\n --> space.yaml:6:26",
            "write key `wk-web` is listed twice\n --> space.yaml:6:36",
            "`write_keys` needs an `events` source: the collector writes that preset's table\n  --> space.yaml:10:17",
            "source `mobile` shares a write key with source `web`\n  --> space.yaml:11:11",
        ],
    );
}

#[test]
fn duplicate_identifier_type() {
    check(
        "duplicate_identifier_type",
        &[
            "duplicate identifier type `email`",
            "identity.yaml:4:13",
            "line 3",
        ],
    );
}

#[test]
fn key_clash_names_both_files() {
    let load = check(
        "key_clash",
        &[
            "key `big_spenders` is defined twice",
            "traits/big_spenders.yaml",
            "audiences/big_spenders.yaml",
        ],
    );
    assert_eq!(errors(&load).len(), 1);
}

#[test]
fn unknown_spec_version() {
    check(
        "unknown_spec_version",
        &[
            "unknown spec_version 2; this Cohort knows 1",
            "space.yaml:2:15",
        ],
    );
}

#[test]
fn bad_preset_suggests() {
    let load = check(
        "bad_preset",
        &[
            "unknown preset `segmnet`",
            "did you mean `segment`?",
            "unknown preset `snowplow`",
            "known presets: events, segment, rudderstack",
        ],
    );
    assert_eq!(errors(&load).len(), 2);
}

#[test]
fn invalid_regex_at_the_pattern() {
    let load = check(
        "invalid_regex",
        &[
            "invalid regex `^test[a-$`",
            "identity.yaml:5:25",
            "invalid regex `(unclosed`",
        ],
    );
    assert_eq!(errors(&load).len(), 2);
}

#[test]
fn non_snake_case_file_keys() {
    check(
        "bad_file_key",
        &[
            "`TotalRevenue` is not a valid key",
            "rename the file to `total_revenue.yaml`",
            "`big-spenders` is not a valid key",
            "rename the file to `big_spenders.yaml`",
        ],
    );
}

#[test]
fn empty_queries() {
    check(
        "empty_query",
        &[
            "`query` is empty",
            "traits/total_revenue.yaml:1:8",
            "`query` needs a value",
            "audiences/everyone.yaml:2:1",
        ],
    );
}

#[test]
fn empty_sql_file() {
    let load = check("empty_sql", &["queries/lifetime_orders.sql is empty"]);
    assert_eq!(errors(&load).len(), 1);
}

#[test]
fn yaml_syntax_error_at_the_scanner_marker() {
    let load = check(
        "yaml_syntax",
        &["error: YAML syntax error:", "audiences/big_spenders.yaml:"],
    );
    assert_eq!(errors(&load).len(), 1);
}

#[test]
fn unknown_identifier_paths_suggest() {
    let load = check(
        "unknown_identifier_path",
        &[
            "unknown message field `usrId` in `usrId`",
            "did you mean `userId`?",
            "did you mean `traits.email`?",
            "`userId` is a plain value with no fields",
            "`context` alone is not an identifier",
        ],
    );
    assert_eq!(errors(&load).len(), 4);
}

#[test]
fn many_errors_in_many_files_at_once_and_sorted() {
    let load = check(
        "many_errors",
        &[
            "destination `webhook` is listed twice",
            "YAML 1.2 reads `yes` as text; write `true`",
            "unknown key `value` in `blocked`",
            "`priority` must be at least 1, found 0",
            "identifier type `Email` is not snake_case",
            "did you mean `lowercase`?",
            "did you mean `id_column`?",
            "space name `Many Errors` is not snake_case",
            "`spec_version`: expected a whole number, found a string",
            "did you mean `rudderstack`?",
            "unknown key `partition` in a source",
            "is not a cron expression",
            "`memory_limit`: `4 gigs` is not a size",
            "did you mean `users`?",
            "did you mean `@daily`?",
            "key `orders_90d` is defined twice",
        ],
    );
    let files: Vec<String> = load
        .diagnostics
        .iter()
        .map(|d| d.loc.as_ref().unwrap().file.display().to_string())
        .collect();
    for f in [
        "audiences/orders_90d.yaml",
        "identity.yaml",
        "queries/lifetime_orders.yaml",
        "space.yaml",
        "traits/orders_90d.yaml",
    ] {
        assert!(files.iter().any(|x| x == f), "no diagnostic in {f}");
    }
    let keys: Vec<_> = load
        .diagnostics
        .iter()
        .map(|d| {
            let l = d.loc.as_ref().unwrap();
            (l.file.clone(), l.line, l.col)
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "diagnostics are sorted by file, line, col");
}

#[test]
fn stray_files_are_warnings_and_the_space_still_loads() {
    let (load, text) = load("stray_files");
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("broken_stray_files", text);
    });
    assert!(!load.has_errors(), "{text}");
    assert!(
        load.diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
    assert_eq!(load.diagnostics.len(), 6, "{text}");
    assert!(text.contains("ignored folder audience: Cohort does not read it"));
    assert!(text.contains("did you mean `identity.yaml`?"));
    assert!(text.contains("rename it to audiences/big_spenders.yaml"));
    assert!(text.starts_with("warning: "));
    let space = load
        .space
        .expect("warnings do not stop a space from loading");
    assert_eq!(space.traits.len(), 1);
    assert!(space.audiences.is_empty());
}

#[test]
fn space_yaml_not_a_mapping() {
    let load = check(
        "not_a_mapping",
        &[
            "expected a mapping for space.yaml, found a list",
            "space.yaml:1:1",
        ],
    );
    assert_eq!(errors(&load).len(), 1);
}

#[test]
fn space_yaml_wrong_types() {
    let load = check(
        "space_wrong_types",
        &[
            "`description`: expected a string, found a list",
            "`sources`: expected a list, found a string",
            "`output`: expected a string, found an integer",
        ],
    );
    assert_eq!(errors(&load).len(), 3);
}

#[test]
fn empty_sources_and_identifiers_without_from() {
    let load = check(
        "empty_sources",
        &[
            "`sources` is empty",
            "missing required key `from`",
            "say where `crm_id` comes from",
            "missing required key `type`",
        ],
    );
    // `user_id` needs no `from`: Segment's default applies.
    assert_eq!(errors(&load).len(), 3);
}

fn starter_root() -> PathBuf {
    manifest_dir().join("examples/spaces/store")
}

#[test]
fn the_starter_space_loads_clean() {
    let root = starter_root();
    let load = load_space(&root);
    assert!(
        load.diagnostics.is_empty(),
        "{}",
        render_all(&load.diagnostics, &root)
    );
    let space = load.space.expect("starter space loads");
    assert_eq!(space.name, "store");
    assert_eq!(space.spec_version, 1);
    assert_eq!(space.output, "./out");
    assert_eq!(space.sources.len(), 1);
    let web = &space.sources[0];
    assert_eq!(
        (
            web.name.as_str(),
            web.preset,
            web.url.as_str(),
            web.partition_column.as_str()
        ),
        ("web", Preset::Events, "./data/events", "dt")
    );
    assert!(space.identity.file_present);
    let types: Vec<&str> = space
        .identity
        .identifiers
        .iter()
        .map(|i| i.id_type.as_str())
        .collect();
    assert_eq!(types, ["user_id", "email", "anonymous_id"]);
    assert_eq!(space.identity.identifiers[1].normalize, ["lowercase"]);
    assert_eq!(space.identity.identifiers[1].limit, Some(5));
    assert_eq!(space.identity.blocked_values, ["null", "anonymous", "-1"]);
    assert_eq!(space.identity.blocked_patterns, ["^[0-]*$"]);

    let traits: Vec<&str> = space.traits.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        traits,
        [
            "account_orders_30d",
            "big_orders_30d",
            "categories_bought",
            "favorite_category",
            "last_order_currency",
            "orders_90d",
            "total_revenue"
        ]
    );
    let accounts: Vec<&str> = space
        .traits
        .iter()
        .filter(|t| t.entity == EntityType::Accounts)
        .map(|t| t.key.as_str())
        .collect();
    assert_eq!(accounts, ["account_orders_30d"]);
    assert_eq!(space.sql_traits.len(), 1);
    assert_eq!(space.sql_traits[0].key, "lifetime_orders");
    assert!(space.sql_traits[0].sql.contains("GROUP BY user_id"));
    assert!(space.sql_traits[0].description.is_some());
    let keys: Vec<&str> = space.audiences.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "active_big_accounts",
            "big_spenders",
            "browsed_not_added",
            "cart_abandoners",
            "lapsed_customers",
            "loyal_big_spenders"
        ]
    );
    let big = &space.audiences[1];
    assert_eq!(
        (big.key.as_str(), big.name.as_str()),
        ("big_spenders", "Big Spenders")
    );
    assert!(big.include_anonymous);
    assert_eq!(space.keys().len(), 14);
}

#[test]
fn query_locs_point_at_the_query_text() {
    let root = starter_root();
    let space = load_space(&root).space.expect("starter space loads");
    let queries = space
        .traits
        .iter()
        .map(|t| (&t.query, &t.query_loc))
        .chain(space.audiences.iter().map(|a| (&a.query, &a.query_loc)));
    for (query, loc) in queries {
        let text = std::fs::read_to_string(root.join(&loc.file)).unwrap();
        let line = text.lines().nth(loc.line - 1).unwrap();
        let at: String = line.chars().skip(loc.col - 1).collect();
        assert!(at.starts_with(query.as_str()), "{loc}: `{at}` vs `{query}`");
        assert_eq!(loc.len, query.chars().count());
    }
}

#[test]
fn init_files_are_the_starter_space() {
    let root = starter_root();
    let files = init_files();
    for (rel, contents) in &files {
        let on_disk = std::fs::read_to_string(root.join(rel)).unwrap();
        assert_eq!(&on_disk, contents, "{rel}");
    }
    // Every definition file of the example is written by `cohort init`.
    let mut on_disk = Vec::new();
    for dir in ["", "traits", "queries", "audiences", "destinations"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                on_disk.push(if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                });
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = files.iter().map(|(r, _)| (*r).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, on_disk);

    // And what init writes loads clean from anywhere.
    let tmp = tempfile::tempdir().unwrap();
    for (rel, contents) in &files {
        let path = tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    let load = load_space(tmp.path());
    assert!(load.diagnostics.is_empty());
    assert!(load.space.is_some());
}

#[test]
fn rendering_names_file_line_col_and_underlines() {
    let (_, text) = load("unknown_key");
    let first = text.split("\n\n").next().unwrap();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "error: unknown key `priorty` in an identifier");
    assert_eq!(lines[1], " --> identity.yaml:2:38");
    assert!(lines[3].starts_with("2 |   - { type: user_id"));
    let caret = lines[4].find('^').unwrap();
    assert_eq!(&lines[3][caret..caret + 7], "priorty");
    assert_eq!(lines[4].matches('^').count(), 7);
    assert_eq!(lines[5], "  = help: did you mean `priority`?");
}

/// Query-language errors are found by `validate` (after loading): each names file:line:col,
/// shows the line with a caret under the culprit and says what was expected, also on the
/// later lines of a block scalar.
#[tokio::test]
async fn query_language_errors_point_into_the_yaml() {
    let root = fixture("query_errors");
    let v = cohort::analyze::validate_space(&root).await;
    let text = render_all(&v.diagnostics, &root).replace(&root.display().to_string(), "<space>");
    insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("broken_query_errors", text);
    });
    assert!(v.space.is_none(), "{text}");
    let errors: Vec<String> = v
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let l = d.loc.as_ref().unwrap();
            format!("{}:{}:{}", l.file.display(), l.line, l.col)
        })
        .collect();
    assert_eq!(
        errors,
        [
            "audiences/bad_comparator.yaml:2:24",
            "audiences/quantifier.yaml:2:9",
            "traits/multiline.yaml:3:16",
            "traits/no_reducer.yaml:1:9",
            "traits/unclosed.yaml:2:32",
        ],
        "{text}"
    );
}

#[test]
fn durations_point_at_the_value() {
    let load = check(
        "bad_durations",
        &[
            "`retention`: `soon` is not a duration",
            "space.yaml:8:12",
            "`sql_trait_timeout`: `0s` is zero",
            "space.yaml:7:20",
            "`timeout`: `5 parsecs` is not a duration",
            "queries/slow.yaml:2:10",
            "unknown key `timout` in a SQL trait's sidecar",
            "queries/typo.yaml:1:1",
            "did you mean `timeout`?",
        ],
    );
    assert_eq!(errors(&load).len(), 4);
}
