//! The commands a new user types, run the way they type them: from a fresh working directory,
//! through a shell, with relative paths, exactly as README's quick start, docs/cli.md and the
//! "Next" / "Try next" lines of `cohort init` and `cohort demo` print them.
//!
//! Every other test hands the binary absolute temp paths; that is how the README's first
//! command came to fail for every new user while CI stayed green. Here `cohort` and `python3`
//! are found on the PATH like a user's, and the working directory is the only anchor.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{cohort_bin, python};

/// A fresh working directory with a `bin/` holding `cohort` and `python3` (the interop venv's).
pub(crate) struct Shell {
    _tmp: tempfile::TempDir,
    pub(crate) cwd: PathBuf,
    path: String,
}

impl Shell {
    pub(crate) fn new() -> Shell {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let cwd = tmp.path().join("home");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        std::os::unix::fs::symlink(cohort_bin(), bin.join("cohort")).unwrap();
        let py = bin.join("python3");
        std::fs::write(&py, format!("#!/bin/sh\nexec '{}' \"$@\"\n", python())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Shell {
            _tmp: tmp,
            cwd,
            path,
        }
    }

    /// One command line for `sh -c` in the working directory, as a user's shell runs it.
    pub(crate) fn command(&self, line: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(line)
            .current_dir(&self.cwd)
            .env("PATH", &self.path)
            .env("CI", "1");
        c
    }

    /// Runs one command line with `sh -c` in the working directory, as a user's shell would.
    fn run(&self, line: &str) -> Output {
        self.command(line).output().unwrap()
    }

    /// Runs a command line that must succeed; returns what it printed.
    pub(crate) fn ok(&self, line: &str) -> String {
        let o = self.run(line);
        let t = text(&o);
        assert!(o.status.success(), "`{line}` failed ({}):\n{t}", o.status);
        t
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `cohort ...` / `python3 ...` lines a command printed under its `heading` line.
fn suggested(output: &str, heading: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("cohort ") || l.starts_with("python3 "))
        .map(str::to_string)
        .collect()
}

/// The lines of fenced blocks in a Markdown file that are commands typed at a `$ ` prompt, or
/// the whole lines of `sh` blocks (comments dropped).
fn doc_commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lang: Option<String> = None;
    for line in markdown.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            lang = match lang {
                Some(_) => None,
                None => Some(info.trim().to_string()),
            };
            continue;
        }
        let Some(l) = &lang else { continue };
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(cmd.trim().to_string());
        } else if l == "sh" && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            out.push(line.trim().to_string());
        }
    }
    out
}

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn readme_quick_start_and_what_init_and_demo_suggest_work_with_relative_paths() {
    let sh = Shell::new();
    // README: the first command is `cargo run --release -- demo`, the binary's `demo` from the
    // clone's folder (smaller here so the test stays quick). The second runs this test suite.
    let readme = doc_commands(&repo_file("README.md"));
    assert!(
        readme.iter().any(|c| c == "cargo run --release -- demo"),
        "README's quick start changed: {readme:?}"
    );
    let demo = sh.ok("cohort demo --events 40000");
    assert!(
        sh.cwd
            .join("cohort-demo/out/store/_cohort/manifest.json")
            .is_file()
    );
    let next = suggested(&demo, "Try next:");
    assert!(next.len() >= 3, "demo suggests too little:\n{demo}");
    for line in &next {
        sh.ok(line);
    }
    // The suggested generate wrote a second source's data beside the first, relative to here.
    assert!(sh.cwd.join("cohort-demo/data/segment/identifies").is_dir());

    // README's first hour, its lines as written: init then run, with a relative folder.
    let own: Vec<&String> = readme
        .iter()
        .filter(|c| c.starts_with("cohort ") || c.starts_with("cd "))
        .collect();
    assert!(
        own.first()
            .is_some_and(|c| c.as_str() == "cohort init myspace && cohort run myspace"),
        "README's own-space lines changed: {own:?}"
    );
    let init = sh.ok(own[0]);
    assert!(init.contains("published to file://"), "{init}");
    for line in &own[1..] {
        sh.ok(line);
    }
    assert!(
        sh.cwd
            .join("myspace/out/store/_cohort/manifest.json")
            .is_file()
    );
    let init_next = suggested(&init, "Next:");
    assert_eq!(init_next.len(), 2, "{init}");
    for line in &init_next {
        sh.ok(line);
    }
    sh.ok("cohort validate myspace");
    let again = sh.ok("cd myspace && cohort run . --as-of 2026-11-01");
    assert!(again.contains("published to file://"), "{again}");
    sh.ok("cd myspace && cohort validate . && cohort runs .");
    // Inside the space folder the folder argument may be left out, as in dbt.
    let here =
        sh.ok("cd myspace && cohort validate && cohort run --as-of 2026-11-01 && cohort runs");
    assert!(here.contains("published to file://"), "{here}");
    sh.ok("cd myspace && cohort compile --as-of 2026-11-01 && cohort vacuum --dry-run");
    sh.ok("cohort runs ./myspace/");
    sh.ok("cohort preview myspace big_spenders --as-of 2026-11-01");
    sh.ok("cohort compile myspace --as-of 2026-11-01");
    // Piped into `head`, a long output stops quietly when `head` has read enough.
    let piped = sh.run(
        "cohort compile myspace --script --dialect duckdb --as-of 2026-11-01 | head -c 10; \
         echo",
    );
    assert!(
        !text(&piped).contains("panicked") && !text(&piped).contains("Broken pipe"),
        "{}",
        text(&piped)
    );
    sh.ok("cohort export myspace big_spenders --format unformatted --out members.csv");
    let csv = std::fs::read_to_string(sh.cwd.join("members.csv")).unwrap();
    assert!(csv.starts_with("key,external_ids\n"), "{csv}");
    // A path with `..` and one with `./` name the same space.
    std::fs::create_dir_all(sh.cwd.join("elsewhere")).unwrap();
    sh.ok("cd elsewhere && cohort validate ../myspace && cohort runs ../myspace");
}

#[test]
fn the_commands_in_docs_cli_run_from_a_working_directory() {
    let sh = Shell::new();
    // `my_space` of docs/cli.md: the starter space and its default sample data (the examples'
    // identifiers are in it), with the export examples' audience added.
    sh.ok("cohort init my_space");
    std::fs::write(
        sh.cwd.join("my_space/audiences/signed_up.yaml"),
        "query: \"event('Signed Up').count() >= 1\"\n",
    )
    .unwrap();
    sh.ok("cohort run my_space --as-of 2026-11-01");
    let cmds: Vec<String> = doc_commands(&repo_file("docs/cli.md"))
        .into_iter()
        .filter(|c| c.starts_with("cohort ") || c.starts_with("cat "))
        .collect();
    assert!(cmds.len() >= 8, "{cmds:?}");
    for c in &cmds {
        let out = sh.ok(c);
        assert!(!out.contains("panicked"), "`{c}`:\n{out}");
        if c.starts_with("cohort explain audience my_space lapsed_customers") {
            assert!(out.contains("is IN audience `lapsed_customers`"), "{out}");
        }
    }
    assert!(sh.cwd.join("emails.csv").is_file());
}
