//! One file per command (or small group of commands): each takes its parsed arguments, does
//! its work through the library and prints through [`super::render`]. Failures are typed
//! [`Error`]s where their meaning decides the exit code; `cli::main` maps them.

pub(super) mod compile;
pub(super) mod explain;
pub(super) mod export;
pub(super) mod generate;
pub(super) mod identity;
pub(super) mod init;
pub(super) mod preview;
pub(super) mod promote;
pub(super) mod run;
pub(super) mod runs;
pub(super) mod serve;
mod serve_defs;
pub(super) mod sync;
pub(super) mod vacuum;

use std::path::Path;

use anyhow::Result;

use crate::analyze;
use crate::error::Error;
use crate::spec;

/// A value the user gave cannot be used (exit 2).
fn invalid(msg: impl std::fmt::Display) -> anyhow::Error {
    Error::InvalidInput(msg.to_string()).into()
}

/// `cohort validate`: loads and checks a space and says what it holds.
pub(super) async fn validate(dir: &Path) -> Result<spec::Space> {
    let space = load_space(dir).await?;
    let unknown = crate::read::repairs::unknown_identifiers(&space).await?;
    if !unknown.is_empty() {
        eprintln!("{}", spec::render_all(&unknown, dir));
        eprintln!("{} warning(s) against the last run", unknown.len());
    }
    println!(
        "space `{}` is valid: {} source(s), {} computed trait(s), {} SQL trait(s), {} audience(s)",
        space.name,
        space.sources.len(),
        space.traits.len(),
        space.sql_traits.len(),
        space.audiences.len()
    );
    print!(
        "{}",
        analyze::live::render(&analyze::live::liveness(&space))
    );
    Ok(space)
}

/// Loads and checks a space; warnings are printed (to stderr) here, errors come back as
/// [`Error::Definition`] with every diagnostic.
pub(super) async fn load_space(dir: &Path) -> Result<spec::Space> {
    let v = analyze::validate_space(dir).await;
    let (errors, warnings) = (v.errors(), v.warnings());
    match v.space {
        Some(space) => {
            if !v.diagnostics.is_empty() {
                eprintln!("{}", spec::render_all(&v.diagnostics, dir));
            }
            if warnings > 0 {
                eprintln!("{warnings} warning(s)");
            }
            Ok(space)
        }
        None => Err(Error::Definition(format!(
            "{}\n{}: {errors} error(s), {warnings} warning(s)",
            spec::render_all(&v.diagnostics, dir),
            dir.display()
        ))
        .into()),
    }
}
