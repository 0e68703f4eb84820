//! `cohort promote <dev> <prod>`: what copying a development space's definitions into a
//! production space would change, and whether prod accepts them.
//!
//! The definitions are identity.yaml, repairs.yaml and every file under traits/, queries/,
//! audiences/ and destinations/; space.yaml (sources, output, schedule) stays prod's own. Files
//! only prod has are left in place, or removed when asked (`--delete`, as rsync's). Before
//! anything is written the result is staged in a
//! temporary folder and validated as prod (its sources opened from prod's folder), and every
//! audience key prod's published history retired is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analyze;
use crate::error::{EngineError, EngineResult};
use crate::spec::{self, Diagnostic, Loc};

/// The top-level files and folders that hold definitions.
pub const DEFINITION_FILES: [&str; 2] = ["identity.yaml", "repairs.yaml"];
pub const DEFINITION_FOLDERS: [&str; 4] = ["traits", "queries", "audiences", "destinations"];

/// What promoting does to one file of prod.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Changed,
    /// Only prod has it: left as it is.
    OnlyInProd,
    /// Only prod has it, and the promotion removes it.
    Removed,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FileChange {
    /// Relative to the space folder, with `/`.
    pub path: String,
    pub change: Change,
    /// Prod's text (changed, only in prod) and dev's (added, changed).
    pub prod: Option<String>,
    pub dev: Option<String>,
}

/// The plan of a promotion.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Promotion {
    pub changes: Vec<FileChange>,
    /// Problems of the promoted space as prod (errors refuse the promotion).
    pub diagnostics: Vec<Diagnostic>,
}

impl Promotion {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// The files to remove from prod.
    pub fn removals(&self) -> impl Iterator<Item = &str> {
        self.changes
            .iter()
            .filter(|c| c.change == Change::Removed)
            .map(|c| c.path.as_str())
    }

    /// The files to write: added and changed, with dev's text.
    pub fn writes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.changes
            .iter()
            .filter_map(|c| match (&c.change, &c.dev) {
                (Change::Added | Change::Changed, Some(t)) => Some((c.path.as_str(), t.as_str())),
                _ => None,
            })
    }
}

/// The definition files of the space at `dir`: relative path -> text.
pub fn definition_files(dir: &Path) -> EngineResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for f in DEFINITION_FILES {
        let p = dir.join(f);
        if p.is_file() {
            out.insert(f.to_string(), read(&p)?);
        }
    }
    for folder in DEFINITION_FOLDERS {
        collect(dir, &dir.join(folder), &mut out)?;
    }
    Ok(out)
}

fn read(p: &Path) -> EngineResult<String> {
    std::fs::read_to_string(p).map_err(|cause| EngineError::Io {
        what: format!("cannot read {}", p.display()),
        cause,
    })
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> EngineResult<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            collect(root, &p, out)?;
        } else if p.is_file() {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            out.insert(spec::slash_path(rel), read(&p)?);
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> EngineResult<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|cause| EngineError::Io {
            what: format!("cannot create {}", parent.display()),
            cause,
        })?;
    }
    std::fs::write(path, text).map_err(|cause| EngineError::Io {
        what: format!("cannot write {}", path.display()),
        cause,
    })
}

/// Plans promoting the definitions of `dev` into `prod` (nothing is written to either);
/// with `delete`, prod's definition files that dev lacks are removed.
pub async fn plan(dev: &Path, prod: &Path, delete: bool) -> EngineResult<Promotion> {
    let dev_check = analyze::validate_space(dev).await;
    if dev_check.space.is_none() {
        return Err(EngineError::Definition(format!(
            "{}\nthe development space is not valid: fix it before promoting it",
            spec::render_all(&dev_check.diagnostics, dev)
        )));
    }
    let prod_space = read(&prod.join("space.yaml"))
        .map_err(|_| EngineError::NotFound(format!("no space.yaml in {}", prod.display())))?;
    let from = definition_files(dev)?;
    let to = definition_files(prod)?;
    let mut changes = Vec::new();
    for (path, text) in &from {
        match to.get(path) {
            None => changes.push(FileChange {
                path: path.clone(),
                change: Change::Added,
                prod: None,
                dev: Some(text.clone()),
            }),
            Some(old) if old != text => changes.push(FileChange {
                path: path.clone(),
                change: Change::Changed,
                prod: Some(old.clone()),
                dev: Some(text.clone()),
            }),
            Some(_) => {}
        }
    }
    for (path, text) in &to {
        if !from.contains_key(path) {
            changes.push(FileChange {
                path: path.clone(),
                change: match delete {
                    true => Change::Removed,
                    false => Change::OnlyInProd,
                },
                prod: Some(text.clone()),
                dev: None,
            });
        }
    }
    // prod as it would be, staged and validated against prod's own folder.
    let staged = tempfile::tempdir().map_err(|cause| EngineError::Io {
        what: "cannot make a temporary folder".into(),
        cause,
    })?;
    write(&staged.path().join("space.yaml"), &prod_space)?;
    let kept = to.iter().filter(|(p, _)| !delete || from.contains_key(*p));
    for (path, text) in kept.chain(&from) {
        write(&staged.path().join(path), text)?;
    }
    let check = analyze::validate_space_as(staged.path(), Some(prod)).await;
    let mut diagnostics = check.diagnostics;
    if let Some(space) = &check.space {
        diagnostics.extend(unknown_tables(space));
        let out = crate::run::output_location(space)?;
        let retired = crate::run::audiences::retired_keys(&out).await?;
        for a in &space.audiences {
            if retired.contains(&a.key) {
                diagnostics.push(
                    Diagnostic::error(
                        Some(Loc::file_start(a.file.clone())),
                        format!(
                            "audience key `{}` was retired in prod (an earlier run had it, a \
                             later one did not); keys are unique for the life of a space",
                            a.key
                        ),
                    )
                    .with_help("give the audience a new key in dev: rename its file"),
                );
            }
        }
    }
    Ok(Promotion {
        changes,
        diagnostics,
    })
}

/// SQL traits reading a table prod's session will not have: a source prod does not name, or
/// anything but `events` and the published tables.
fn unknown_tables(space: &spec::Space) -> Vec<Diagnostic> {
    let mut known: Vec<String> = space.sources.iter().map(|s| s.name.clone()).collect();
    known.push("events".into());
    known.extend(crate::run::PUBLISHED_TABLES.iter().map(|t| t.to_string()));
    known.extend(crate::run::HISTORY_TABLES.iter().map(|t| t.to_string()));
    let mut out = Vec::new();
    for def in &space.sql_traits {
        for (table, loc) in analyze::sql_trait::tables_read(def) {
            if known.contains(&table) {
                continue;
            }
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            let help = match spec::suggest(&table, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "prod's sources: {}",
                    space
                        .sources
                        .iter()
                        .map(|s| format!("`{}`", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            out.push(
                Diagnostic::error(
                    Some(loc),
                    format!(
                        "SQL trait `{}` reads table `{table}`, which prod does not have",
                        def.key
                    ),
                )
                .with_help(help),
            );
        }
    }
    out
}

/// Writes the promotion's added and changed files into `prod` and removes the files it
/// removes: how many of each.
pub fn apply(p: &Promotion, prod: &Path) -> EngineResult<(usize, usize)> {
    let mut written = 0;
    for (path, text) in p.writes() {
        write(&prod.join(path), text)?;
        written += 1;
    }
    let mut removed = 0;
    for path in p.removals() {
        let at = prod.join(path);
        std::fs::remove_file(&at).map_err(|cause| EngineError::Io {
            what: format!("cannot remove {}", at.display()),
            cause,
        })?;
        removed += 1;
    }
    Ok((written, removed))
}

/// A line diff of `old` and `new` (`-`, `+` and, around changes, ` ` lines), for the diff
/// `cohort promote` shows; files of more than 2,000 lines are summarized.
pub fn line_diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > 2000 || b.len() > 2000 {
        return vec![format!("  ({} lines -> {} lines)", a.len(), b.len())];
    }
    // Longest common subsequence, then a walk that prints what differs.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_diffs() {
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nB\nc\nd\n"),
            vec!["  a", "- b", "+ B", "  c", "+ d"]
        );
        assert_eq!(line_diff("", "x"), vec!["+ x"]);
        assert_eq!(line_diff("x\ny", "y"), vec!["- x", "  y"]);
    }
}
