//! `cohort identity unlink | split | block | merge | diff`: the helpers that write repairs.yaml
//! entries (the file stays the truth: they append what a person would write, and check the
//! space still validates), and the diff that shows what the next run would change.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::super::args::IdentityCmd;
use super::super::render;
use super::{invalid, load_space};
use crate::error::Error;
use crate::read;
use crate::run::RunOptions;
use crate::spec::{self, RepairKind};

pub(in crate::cli) async fn identity_cmd(cmd: IdentityCmd) -> Result<()> {
    match cmd {
        IdentityCmd::Unlink(a) => add(&a.dir, RepairKind::Unlink, &[a.identifier], &a.reason).await,
        IdentityCmd::Split(a) => add(&a.dir, RepairKind::Split, &[a.identifier], &a.reason).await,
        IdentityCmd::Block(a) => add(&a.dir, RepairKind::Block, &[a.identifier], &a.reason).await,
        IdentityCmd::Merge {
            dir,
            identifier,
            other,
            reason,
        } => add(&dir, RepairKind::Merge, &[identifier, other], &reason).await,
        IdentityCmd::Diff { dir, as_of } => diff(&dir, as_of).await,
    }
}

/// Appends an entry to `dir`'s repairs.yaml, keeping the file as it was when the space no
/// longer validates with it.
async fn add(dir: &Path, kind: RepairKind, ids: &[String], reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(invalid(
            "--reason is empty: say why, for whoever reads repairs.yaml next",
        ));
    }
    for id in ids {
        if spec::split_identifier(id).is_none() {
            return Err(invalid(format!(
                "`{id}` is not `type:value` (e.g. `anonymous_id:kiosk-7`)"
            )));
        }
    }
    // The space as it is must be valid: the entry is checked against its identifier types.
    load_space(dir).await?;
    let path = dir.join("repairs.yaml");
    let before = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(cause) => {
            return Err(Error::Io {
                what: format!("cannot read {}", path.display()),
                cause,
            }
            .into());
        }
    };
    let mut text = before.clone().unwrap_or_else(|| {
        "# Identity repairs: applied by every run, in this order (see docs/identity.md).\n"
            .to_string()
    });
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let line = text.lines().count() + 1;
    text.push_str(&spec::entry_text(kind, ids, reason));
    write(&path, &text)?;
    let load = spec::load_space(dir);
    let errors: Vec<_> = load
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !errors.is_empty() {
        match &before {
            Some(t) => write(&path, t)?,
            None => std::fs::remove_file(&path).map_err(|cause| Error::Io {
                what: format!("cannot remove {}", path.display()),
                cause,
            })?,
        }
        return Err(Error::Definition(format!(
            "{}\nrepairs.yaml is left as it was",
            spec::render_all(&errors, dir)
        ))
        .into());
    }
    println!("repairs.yaml:{line}: {} {}", kind.word(), ids.join(" "));
    if let Some(space) = load.space {
        let unknown = read::repairs::unknown_identifiers(&space).await?;
        let here: Vec<_> = unknown
            .into_iter()
            .filter(|d| d.loc.as_ref().is_some_and(|l| l.line == line))
            .collect();
        if !here.is_empty() {
            eprintln!("{}", spec::render_all(&here, dir));
        }
    }
    println!(
        "`cohort identity diff {d}` shows what the next run changes; `cohort run {d}` applies it",
        d = dir.display()
    );
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|cause| {
        Error::Io {
            what: format!("cannot write {}", path.display()),
            cause,
        }
        .into()
    })
}

async fn diff(dir: &Path, as_of: Option<DateTime<Utc>>) -> Result<()> {
    let space = load_space(dir).await?;
    let opts = RunOptions {
        as_of,
        ..Default::default()
    };
    let d = read::identity_diff::identity_diff(&space, &opts).await?;
    print!("{}", render::render_identity_diff(&d));
    Ok(())
}
