//! `cohort promote <dev> <prod>`: shows what copying dev's definitions into prod changes,
//! refuses what prod would not accept, and writes the files once confirmed (`--yes`, or a
//! `y` on a terminal).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Result;

use crate::error::Error;
use crate::read::promote::{self, Change};

pub(in crate::cli) async fn promote_cmd(
    dev: &Path,
    prod: &Path,
    yes: bool,
    dry_run: bool,
    delete: bool,
) -> Result<()> {
    let plan = promote::plan(dev, prod, delete).await?;
    let writes = plan.writes().count();
    let removals = plan.removals().count();
    let todo = match removals {
        0 => format!("{writes} file(s) to write"),
        n => format!("{writes} file(s) to write, {n} to remove"),
    };
    println!("promote {} -> {}: {todo}", dev.display(), prod.display());
    for c in &plan.changes {
        match c.change {
            Change::Added => {
                println!("\n+ {} (new)", c.path);
                for l in c.dev.as_deref().unwrap_or("").lines() {
                    println!("+ {l}");
                }
            }
            Change::Changed => {
                println!("\n~ {}", c.path);
                let old = c.prod.as_deref().unwrap_or("");
                for l in promote::line_diff(old, c.dev.as_deref().unwrap_or("")) {
                    println!("{l}");
                }
            }
            Change::OnlyInProd => println!(
                "\n= {} (only in prod: left as it is; --delete removes it)",
                c.path
            ),
            Change::Removed => {
                println!("\n- {} (only in prod: removed)", c.path);
                for l in c.prod.as_deref().unwrap_or("").lines() {
                    println!("- {l}");
                }
            }
        }
    }
    if !plan.diagnostics.is_empty() {
        let text: Vec<String> = plan
            .diagnostics
            .iter()
            .map(|d| {
                // A file dev gives is shown from dev; one only prod has, from prod.
                let from_dev = d.loc.as_ref().is_some_and(|l| dev.join(&l.file).is_file());
                d.render(if from_dev { dev } else { prod })
            })
            .collect();
        eprintln!("\n{}", text.join("\n"));
    }
    if plan.errors() > 0 {
        return Err(Error::Definition(format!(
            "prod would not accept these definitions ({} error(s)); nothing was written",
            plan.errors()
        ))
        .into());
    }
    if writes + removals == 0 {
        println!("\nnothing to promote: prod has dev's definitions");
        return Ok(());
    }
    if dry_run {
        println!("\n--dry-run: nothing was written");
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::InvalidInput(
                "not a terminal: pass --yes to write these files (or --dry-run to only look)"
                    .into(),
            )
            .into());
        }
        print!("\n{todo} in {}: go ahead? [y/N] ", prod.display());
        std::io::stdout().flush().ok();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).ok();
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing was written");
            return Ok(());
        }
    }
    let (written, removed) = promote::apply(&plan, prod)?;
    let removed = match removed {
        0 => String::new(),
        n => format!(", removed {n}"),
    };
    println!(
        "\nwrote {written} file(s) into {p}{removed}; `cohort run {p}` publishes them",
        p = prod.display()
    );
    Ok(())
}
