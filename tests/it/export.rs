//! `cohort export`: a small space run for real, each CSV format compared byte for byte with a
//! hand-written file under `tests/fixtures/export/`, and the errors a user can hit (unknown
//! audience, format or identifier type; an audience not yet published; a space never run).

use std::path::{Path, PathBuf};
use std::process::Command;

use cohort::serve::export::{self, ExportFormat, ExportOptions, ExportSummary, Hash};
use cohort::spec::Space;

use crate::common::{EVENT_COLUMNS, cohort_bin, load, write_space, write_text_parquet};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/export")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `(message_id, type, event, user_id, anonymous_id, group_id, timestamp, traits)`.
type Row<'a> = [&'a str; 8];

/// Four people and two accounts, with identifiers known by hand (see the fixtures' README):
/// ada (a1 first, then u1, two emails, a2), bob (u2 first, an email with a comma), cy (a3
/// only) sign up; dee (u4) only orders. Ada is in account acme, dee in globex.
fn build(dir: &Path) {
    write_space(dir, "exp", &[("web", "events", "./data/events")], "./out");
    let rows: [Row; 11] = [
        [
            "m01",
            "track",
            "Signed Up",
            "",
            "a1",
            "",
            "2026-10-01T09:00:00Z",
            "",
        ],
        [
            "m02",
            "identify",
            "",
            "u1",
            "a1",
            "",
            "2026-10-01T09:05:00Z",
            r#"{"email":"Ada@Example.com"}"#,
        ],
        [
            "m03",
            "identify",
            "",
            "u1",
            "",
            "",
            "2026-10-01T09:10:00Z",
            r#"{"email":"ada.work@example.com"}"#,
        ],
        [
            "m04",
            "track",
            "Order Completed",
            "u1",
            "a2",
            "",
            "2026-10-01T09:20:00Z",
            "",
        ],
        [
            "m05",
            "track",
            "Signed Up",
            "u2",
            "",
            "",
            "2026-10-01T10:00:00Z",
            "",
        ],
        [
            "m06",
            "identify",
            "",
            "u2",
            "",
            "",
            "2026-10-01T10:05:00Z",
            r#"{"email":"bob,jr@example.com"}"#,
        ],
        [
            "m07",
            "track",
            "Signed Up",
            "",
            "a3",
            "",
            "2026-10-01T11:00:00Z",
            "",
        ],
        [
            "m08",
            "track",
            "Order Completed",
            "u4",
            "",
            "",
            "2026-10-01T12:00:00Z",
            "",
        ],
        [
            "m09",
            "identify",
            "",
            "u4",
            "",
            "",
            "2026-10-01T12:05:00Z",
            r#"{"email":"dee@example.com"}"#,
        ],
        [
            "m10",
            "group",
            "",
            "u1",
            "",
            "acme",
            "2026-10-01T13:00:00Z",
            r#"{"name":"Acme"}"#,
        ],
        [
            "m11",
            "group",
            "",
            "u4",
            "",
            "globex",
            "2026-10-01T13:05:00Z",
            r#"{"name":"Globex"}"#,
        ],
    ];
    let o = |s: &'static str| if s.is_empty() { None } else { Some(s) };
    let rows: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|r| {
            vec![
                o(r[0]),
                o(r[1]),
                o(r[2]),
                o(r[3]),
                o(r[4]),
                o(r[5]),
                None,
                o(r[6]),
                None,
                o(r[7]),
                None,
            ]
        })
        .collect();
    write_text_parquet(
        &dir.join("data/events/dt=2026-10-01/part-0.parquet"),
        &EVENT_COLUMNS,
        &rows,
    );
    std::fs::create_dir_all(dir.join("audiences")).unwrap();
    std::fs::write(
        dir.join("audiences/signed_up.yaml"),
        "query: \"event('Signed Up').count() >= 1\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("audiences/signup_accounts.yaml"),
        "type: accounts\nquery: \"ANY event('Signed Up').count() >= 1\"\n",
    )
    .unwrap();
}

async fn csv(space: &Space, key: &str, opts: &ExportOptions) -> (String, ExportSummary) {
    let mut out = Vec::new();
    let s = export::write_csv(space, key, opts, &mut out).await.unwrap();
    (String::from_utf8(out).unwrap(), s)
}

async fn error(space: &Space, key: &str, opts: &ExportOptions) -> String {
    let mut out = Vec::new();
    export::write_csv(space, key, opts, &mut out)
        .await
        .unwrap_err()
        .to_string()
}

fn single(id_type: Option<&str>, hash: Option<Hash>) -> ExportOptions {
    ExportOptions {
        format: ExportFormat::Single,
        id_type: id_type.map(str::to_string),
        hash,
    }
}

#[tokio::test]
async fn formats_match_fixed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    build(dir);
    let space = load(dir).await;

    // Before any run: the space says it never published.
    let e = error(
        &space,
        "signed_up",
        &ExportOptions::new(ExportFormat::Unformatted),
    )
    .await;
    assert!(e.contains("has not published a run yet"), "{e}");

    let opts = cohort::run::RunOptions {
        as_of: Some(cohort::cli::parse_time("2026-10-10").unwrap()),
        ..Default::default()
    };
    cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();

    let (got, s) = csv(
        &space,
        "signed_up",
        &ExportOptions::new(ExportFormat::Unformatted),
    )
    .await;
    assert_eq!(got, fixture("unformatted.csv"));
    assert_eq!(
        s,
        ExportSummary {
            rows: 3,
            members: 3,
            bytes: got.len() as u64
        }
    );

    let (got, _) = csv(
        &space,
        "signed_up",
        &ExportOptions::new(ExportFormat::Indexed),
    )
    .await;
    assert_eq!(got, fixture("indexed.csv"));

    // Single: SHA-256 of each email by default; cy has no email, so 3 rows for 3 members.
    let (got, s) = csv(&space, "signed_up", &single(None, None)).await;
    assert_eq!(got, fixture("single_email_sha256.csv"));
    assert_eq!((s.rows, s.members), (3, 3));
    let (got, _) = csv(
        &space,
        "signed_up",
        &single(Some("user_id"), Some(Hash::None)),
    )
    .await;
    assert_eq!(got, fixture("single_user_id_none.csv"));

    // An account audience: the account id is the key and its one identifier (group_id).
    let (got, s) = csv(
        &space,
        "signup_accounts",
        &ExportOptions::new(ExportFormat::Unformatted),
    )
    .await;
    assert_eq!(got, fixture("accounts_unformatted.csv"));
    assert_eq!(s.members, 1);
    let (got, _) = csv(&space, "signup_accounts", &single(None, Some(Hash::None))).await;
    assert_eq!(got, "group_id\nacme\n");

    // Errors a user can make.
    let e = error(
        &space,
        "signed_upp",
        &ExportOptions::new(ExportFormat::Indexed),
    )
    .await;
    assert!(
        e.contains("no audience `signed_upp` in space `exp`")
            && e.contains("did you mean `signed_up`?"),
        "{e}"
    );
    let e = error(&space, "signed_up", &single(Some("emial"), None)).await;
    assert!(
        e.contains("no identifier type `emial`") && e.contains("did you mean `email`?"),
        "{e}"
    );
    let e = error(&space, "signup_accounts", &single(Some("email"), None)).await;
    assert!(e.contains("one identifier type, `group_id`"), "{e}");
    let mut indexed_hashed = ExportOptions::new(ExportFormat::Indexed);
    indexed_hashed.hash = Some(Hash::Sha256);
    let e = error(&space, "signed_up", &indexed_hashed).await;
    assert!(e.contains("--hash applies to --format single only"), "{e}");
    let e = ExportFormat::parse("csv").unwrap_err().to_string();
    assert!(
        e.contains("unknown export format `csv`") && e.contains("unformatted, indexed or single"),
        "{e}"
    );

    // Defined after the last run: not exported as an empty audience.
    std::fs::write(
        dir.join("audiences/orderers.yaml"),
        "query: \"event('Order Completed').count() >= 1\"\n",
    )
    .unwrap();
    let space = load(dir).await;
    let e = error(
        &space,
        "orderers",
        &ExportOptions::new(ExportFormat::Unformatted),
    )
    .await;
    assert!(e.contains("not in its last published run"), "{e}");
    std::fs::remove_file(dir.join("audiences/orderers.yaml")).unwrap();

    // The binary: a file with --out, exit code 2 for an unknown format.
    let out = dir.join("signed_up.csv");
    let o = Command::new(cohort_bin())
        .args([
            "export",
            dir.to_str().unwrap(),
            "signed_up",
            "--format",
            "indexed",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("3 members, 3 rows"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        fixture("indexed.csv")
    );
    let o = Command::new(cohort_bin())
        .args([
            "export",
            dir.to_str().unwrap(),
            "signed_up",
            "--format",
            "single",
        ])
        .args(["--id-type", "user_id", "--hash", "none"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        fixture("single_user_id_none.csv")
    );
    let o = Command::new(cohort_bin())
        .args([
            "export",
            dir.to_str().unwrap(),
            "signed_up",
            "--format",
            "xml",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown export format `xml`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `cohort export --out` where the write fails part way: under a file-size limit (`ulimit -f
/// 0`, which fails every write even as root) the export exits 1 naming the file, the earlier
/// export at that path is byte for byte as it was and no temporary file is left beside it;
/// without the limit the same command replaces it. The path is relative to the current folder.
#[tokio::test]
async fn a_failed_export_leaves_the_earlier_file_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("space");
    build(&dir);
    let space = load(&dir).await;
    let opts = cohort::run::RunOptions {
        as_of: Some(cohort::cli::parse_time("2026-10-10").unwrap()),
        ..Default::default()
    };
    cohort::run::run(&space, &opts, &cohort::run::Quiet)
        .await
        .unwrap();
    let exports = tmp.path().join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let older = "key,external_ids\nolder,{}\n".repeat(50);
    std::fs::write(exports.join("signed_up.csv"), &older).unwrap();
    let export = |limit: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("{limit} exec \"$0\" \"$@\""))
            .arg(cohort_bin())
            .args(["export", dir.to_str().unwrap(), "signed_up"])
            .args(["--format", "unformatted", "--out", "signed_up.csv"])
            .current_dir(&exports)
            .output()
            .unwrap()
    };
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&exports)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    let o = export("ulimit -f 0 &&");
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "an error, not a kill: {stderr}");
    assert!(
        stderr.contains("writing signed_up.csv") && stderr.contains("left unchanged"),
        "{stderr}"
    );
    assert!(stderr.contains("too large"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(exports.join("signed_up.csv")).unwrap(),
        older
    );
    assert_eq!(listing(), ["signed_up.csv"], "no temporary file is left");

    let o = export("");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(exports.join("signed_up.csv")).unwrap(),
        fixture("unformatted.csv")
    );
    assert_eq!(listing(), ["signed_up.csv"]);
}
