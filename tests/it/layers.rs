//! The house rules of `src/` that a compiler does not check, checked on every test run: imports
//! between top-level modules point the way `src/lib.rs` draws them, every module says why it
//! exists (`//!`), and no source file outgrows ~600 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The dependency table of `src/lib.rs`: each module and what it may name with `crate::`
/// (`None`: anything). Lines look like `//!  run       ─▶ script, plan, error`.
fn allowed() -> Vec<(String, Option<Vec<String>>)> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let rows: Vec<_> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!  ")?.split_once(" ─▶ "))
        .filter(|(m, _)| !m.trim().contains(' '))
        .map(|(m, to)| {
            let to = match to.trim() {
                "(anything)" => None,
                "(nothing)" => Some(Vec::new()),
                list => Some(list.split(", ").map(String::from).collect()),
            };
            (m.trim().to_string(), to)
        })
        .collect();
    assert!(rows.len() > 5, "src/lib.rs has no dependency table");
    rows
}

/// Lines a file may have; test modules and generated data are exempt (see [`exempt`]).
const MAX_LINES: usize = 620;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/run/stages/x.rs` -> `run`, `src/error.rs` ->
/// `error`).
fn top_module(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules named after `crate::` in `code` (comments skipped), with the first
/// line naming each: `crate::a::b`, `crate::{a, b::c}` (over several lines too).
fn crate_refs(code: &str) -> Vec<(String, usize)> {
    let text: String = code
        .lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut refs = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = &text[..text.len() - rest.len() + i];
        let line = before.matches('\n').count() + 1;
        let prev = before.chars().last();
        let after = &rest[i + "crate::".len()..];
        rest = after;
        if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `mycrate::`, `$crate::`
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut name = String::new();
            let mut at_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_start = true,
                    c if at_start && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if !name.is_empty() => {
                        refs.push((std::mem::take(&mut name), line));
                        at_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                refs.push((name, line));
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            refs.push((name, line));
        }
    }
    refs
}

fn exempt(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

#[test]
fn imports_point_the_way_lib_rs_draws_them() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let table = allowed();
    let mut wrong = Vec::new();
    for f in &files {
        let from = top_module(f);
        if matches!(from.as_str(), "lib" | "main") {
            continue;
        }
        let Some(allowed) = table
            .iter()
            .find(|(m, _)| *m == from)
            .unwrap_or_else(|| panic!("{from} ({}) is not in src/lib.rs's table", f.display()))
            .1
            .as_ref()
        else {
            continue;
        };
        let code = std::fs::read_to_string(f).unwrap();
        for (to, line) in crate_refs(&code) {
            if to != from && to != "self" && !allowed.contains(&to) {
                wrong.push(format!("{}:{line}: {from} -> {to}", f.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports pointing the wrong way (see src/lib.rs):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layer_check_sees_grouped_and_nested_imports() {
    let code = "use crate::{\n    run::x,\n    read::{a, b},\n};\n// crate::cli::z\nlet y = crate::serve::f();";
    let names: BTreeSet<String> = crate_refs(code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["read", "run", "serve"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(crate_refs("$crate::x")[..], []);
}

#[test]
fn every_module_says_why_it_exists() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let silent: Vec<String> = files
        .iter()
        .filter(|f| {
            let code = std::fs::read_to_string(f).unwrap();
            !code.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        silent.is_empty(),
        "modules without a `//!` line: {silent:?}"
    );
}

#[test]
fn no_source_file_outgrows_six_hundred_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter(|f| !exempt(f))
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "split these files: {long:?}");
}

#[test]
fn the_architecture_page_maps_every_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let mapped: BTreeSet<String> = page
        .lines()
        .skip_while(|l| *l != "src/")
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.trim_start().split_once('/'))
        .map(|(name, _)| name)
        .map(String::from)
        .collect();
    let folders: BTreeSet<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        mapped, folders,
        "docs/architecture.md's map and src/ disagree"
    );
    let tabled: BTreeSet<String> = allowed().into_iter().map(|(m, _)| m).collect();
    let modules: BTreeSet<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "lib" && m != "main")
        .collect();
    assert_eq!(
        tabled, modules,
        "src/lib.rs's dependency table and src/ disagree"
    );
}
