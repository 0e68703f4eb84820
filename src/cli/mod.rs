//! The `cohort` command line: [`args`] says what a command takes, [`commands`] does it,
//! [`render`] prints what it found. Here: the entry point, which command runs, and the one
//! place an error becomes an exit code (0 success, 1 something failed, 2 the input (a space,
//! a flag, a name) is the user's to fix; see [`Error::exit_code`]).

mod args;
mod commands;
mod output_file;
mod progress;
mod render;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

pub use args::parse_time;
use args::{Cli, Command, ExplainCmd};
use commands::*;

use crate::error::Error;

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap's own: a bad flag or value is 2, `--help` and `--version` are 0.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        stop_quietly_on_a_closed_pipe();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The typed error, if the failure has one (under any context added on the way);
            // anything else (a file that could not be written, a destination that stopped)
            // failed: 1.
            let typed = e.chain().find_map(|c| c.downcast_ref::<Error>());
            match e.downcast_ref::<Error>() {
                // Diagnostics carry their own `error:` lines.
                Some(Error::Definition(text)) => {
                    eprint!("{text}");
                    if !text.ends_with('\n') {
                        eprintln!();
                    }
                }
                _ => eprintln!("error: {e:#}"),
            }
            ExitCode::from(typed.map_or(1, Error::exit_code))
        }
    }
}

/// `cohort compile ... | head` stops quietly when the reader goes, as other Unix tools do,
/// instead of panicking in `print!` (Rust ignores SIGPIPE by default). Not for `serve`, whose
/// sockets must outlive a client that hangs up.
fn stop_quietly_on_a_closed_pipe() {
    // SAFETY: called before any thread starts; restores the signal's default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COHORT_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            // Cohort's retention uses deltalake's keep_versions, which warns that it is new.
            "warn,buoyant_kernel=off,deltalake_core::operations::vacuum=error",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn dispatch(cmd: Command) -> Result<()> {
    output_file::catch_file_size_signal();
    match cmd {
        Command::Init {
            dir,
            no_data,
            events,
        } => init::init(&dir, no_data, events).await,
        Command::Validate { dir } => validate(&dir).await.map(|_| ()),
        Command::Generate(a) => generate::generate_cmd(a).await,
        Command::Run(a) => run::run_cmd(a).await,
        Command::Explain(ExplainCmd::Identity { dir, identifier }) => {
            explain::explain_identity(&dir, &identifier).await
        }
        Command::Identity(c) => identity::identity_cmd(c).await,
        Command::Promote {
            dev,
            prod,
            yes,
            dry_run,
            delete,
        } => promote::promote_cmd(&dev, &prod, yes, dry_run, delete).await,
        Command::Explain(ExplainCmd::Audience {
            dir,
            key,
            identifier,
            as_of,
        }) => explain::explain_audience(&dir, &key, &identifier, as_of).await,
        Command::Preview {
            dir,
            audience,
            as_of,
        } => preview::preview_cmd(&dir, &audience, as_of).await,
        Command::Compile {
            dir,
            dialect,
            as_of,
            script,
        } => compile::compile_cmd(&dir, dialect, as_of, script).await,
        Command::Serve(a) => {
            let mut spaces = Vec::new();
            for d in &a.dirs {
                spaces.push(validate(d).await?);
            }
            serve::serve(a, spaces).await
        }
        Command::Vacuum(a) => vacuum::vacuum_cmd(a).await,
        Command::Runs { dir, limit } => runs::runs_cmd(&dir, limit).await,
        Command::Export(a) => export::export_cmd(a).await,
        Command::Demo { dir, events, seed } => init::demo(&dir, events, seed).await,
        Command::Sync { dir, destinations } => sync::sync_cmd(&dir, destinations).await,
    }
}
