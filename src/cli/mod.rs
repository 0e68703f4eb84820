//! The `cohort` command line: clap commands that drive spec, analyze, engine, store and
//! generate. Exit codes: 0 success, 1 a run or I/O failed, 2 the input (a space, a flag) is
//! invalid.

mod output_file;
mod progress;
mod serve;
mod vacuum;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::analyze;
use crate::generate::{self, GenerateOptions};
use crate::read;
use crate::run::{self, RunOptions};
use crate::spec::{self, Preset};
use crate::store::objects;

/// Cohort: profiles and audiences over the event tables in your data lake.
#[derive(Parser, Debug)]
#[command(name = "cohort", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a starter space (and a small sample dataset) into DIR.
    Init {
        dir: PathBuf,
        /// Do not generate sample data into DIR/data/events.
        #[arg(long)]
        no_data: bool,
        /// Sample events to generate.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
    },
    /// Check every file of a space and report all problems at once (exit 2 when invalid).
    Validate { dir: PathBuf },
    /// Write realistic Segment-spec sample events as Parquet.
    Generate(GenerateArgs),
    /// Run every stage of a space and publish its tables atomically.
    Run(RunArgs),
    /// Explain a published result: why identifiers share a profile.
    #[command(subcommand)]
    Explain(ExplainCmd),
    /// Print each computed trait's logical plan and SQL, and the fused plan a run executes.
    Compile {
        /// The space folder.
        dir: PathBuf,
        /// SQL dialect: datafusion, postgres, duckdb, bigquery or snowflake.
        #[arg(long, default_value = "datafusion")]
        dialect: String,
        /// Measure windows from this time (RFC 3339 or YYYY-MM-DD); default: now.
        #[arg(long)]
        as_of: Option<String>,
        /// Write the whole space (events, identity, traits, profiles, audiences) as one
        /// runnable script for the dialect (duckdb or postgres) instead; it reads the space's
        /// data once to plan it, as a run does.
        #[arg(long)]
        script: bool,
    },
    /// Evaluate one audience without publishing: its size, the size of each top-level
    /// condition, its overlap with the other audiences and ten sample members.
    Preview {
        /// The space folder.
        dir: PathBuf,
        /// An audience key of the space, or an audience file (which may not be saved in the
        /// space yet; its file stem is its key).
        audience: String,
        /// Evaluate as of this time; default: now.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Serve spaces: the scheduler, the Profile API and the Postgres-wire SQL endpoint.
    Serve(serve::ServeArgs),
    /// Remove the files of old table versions: those no manifest within the retention window
    /// names (the current run's tables are always kept).
    Vacuum(vacuum::VacuumArgs),
    /// List a space's run history: status, trigger, timings, audience changes.
    Runs {
        /// The space folder.
        dir: PathBuf,
        /// How many runs to show, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Deliver audiences to their destinations now: every member on a first sync, then only
    /// the changes of runs published since (prints a summary per destination).
    Sync {
        /// The space folder.
        dir: PathBuf,
        /// Only this destination (repeatable); default: every destination.
        #[arg(long = "destination")]
        destinations: Vec<String>,
    },
    /// Write the members of a published audience as CSV, in one of Segment's formats.
    Export(ExportArgs),
    /// Generate ~1M events, run the sample space on them and show what came out.
    Demo {
        /// Folder for the demo space, its data and its output.
        #[arg(long, default_value = "cohort-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Table layout: events, segment or rudderstack.
    #[arg(long, default_value = "events")]
    preset: String,
    /// Number of events (rows) to write.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days of history, ending at --end.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Last day of the data (exclusive), e.g. 2026-11-01.
    #[arg(long)]
    end: Option<String>,
    /// Where to write: a folder, file://... or s3://bucket/prefix.
    #[arg(long)]
    out: String,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The space folder.
    dir: PathBuf,
    /// The audience key.
    audience: String,
    /// unformatted (key, external_ids JSON), indexed (plus one column per identifier:
    /// email, email_1, ...) or single (one identifier type, one value per row).
    #[arg(long)]
    format: String,
    /// single only: the identifier type to write (default email; group_id for accounts).
    #[arg(long)]
    id_type: Option<String>,
    /// single only: sha256 (the default) or none.
    #[arg(long)]
    hash: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ExplainCmd {
    /// The profile of an identifier, its identifiers, and the events that joined them; for a
    /// dropped or blocked identifier, the rule and the events.
    Identity {
        /// The space folder.
        dir: PathBuf,
        /// The identifier, as `type:value` (e.g. `email:ada@example.com`).
        identifier: String,
    },
    /// Whether a profile is in an audience: each top-level condition's value, the traits it
    /// read and the events that decided it (evaluated now, nothing published).
    Audience {
        /// The space folder.
        dir: PathBuf,
        /// The audience key.
        key: String,
        /// The profile, as `type:value` (an account audience: `group_id:<account>`).
        identifier: String,
        /// Evaluate as of this time; default: the last published run's as-of, else now.
        #[arg(long)]
        as_of: Option<String>,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The space folder.
    dir: PathBuf,
    /// Evaluate every window against this time (RFC 3339 or YYYY-MM-DD); default: now.
    #[arg(long)]
    as_of: Option<String>,
    /// DataFusion memory limit (e.g. 4GB); operators spill to disk beyond it.
    #[arg(long)]
    memory_limit: Option<String>,
    /// Folder for spill files (default: the OS temp dir).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Read only the last N days of events; older partitions are not opened.
    #[arg(long)]
    window_days: Option<u32>,
    /// Seconds to wait for another run of this space to finish.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// Rebuild the identity graph from scratch instead of extending the previous one.
    #[arg(long)]
    full: bool,
    /// Set aside source files that cannot be read (listed in the run record and
    /// `event_errors`) instead of failing the run.
    #[arg(long)]
    skip_bad_files: bool,
    /// Stop and fail the run when its stages take longer than this (e.g. 30m, 2h); the last
    /// good run stays published.
    #[arg(long)]
    timeout: Option<String>,
}

/// An error that means "the input is invalid" (exit code 2), already reported.
#[derive(Debug)]
struct Invalid;
impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid input")
    }
}
impl std::error::Error for Invalid {}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
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
        Err(e) if e.downcast_ref::<Invalid>().is_some() => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
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
        } => init(&dir, no_data, events).await,
        Command::Validate { dir } => validate(&dir).await.map(|_| ()),
        Command::Generate(a) => generate_cmd(a).await,
        Command::Run(a) => run_cmd(a).await,
        Command::Explain(ExplainCmd::Identity { dir, identifier }) => {
            explain_identity(&dir, &identifier).await
        }
        Command::Explain(ExplainCmd::Audience {
            dir,
            key,
            identifier,
            as_of,
        }) => explain_audience(&dir, &key, &identifier, as_of.as_deref()).await,
        Command::Preview {
            dir,
            audience,
            as_of,
        } => preview_cmd(&dir, &audience, as_of.as_deref()).await,
        Command::Compile {
            dir,
            dialect,
            as_of,
            script,
        } => compile_cmd(&dir, &dialect, as_of.as_deref(), script).await,
        Command::Serve(a) => {
            let mut spaces = Vec::new();
            for d in &a.dirs {
                spaces.push(validate(d).await?);
            }
            serve::serve(a, spaces).await
        }
        Command::Vacuum(a) => vacuum::vacuum_cmd(a).await,
        Command::Runs { dir, limit } => serve::runs(&load_space(&dir).await?, limit).await,
        Command::Export(a) => export_cmd(a).await,
        Command::Demo { dir, events, seed } => demo(&dir, events, seed).await,
        Command::Sync { dir, destinations } => sync_cmd(&dir, destinations).await,
    }
}

fn invalid(msg: impl std::fmt::Display) -> anyhow::Error {
    eprintln!("error: {msg}");
    anyhow!(Invalid)
}

/// Parses `2026-11-01`, `2026-11-01T12:00:00Z` or `2026-11-01 12:00:00` (UTC).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(n.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    Err(format!(
        "`{s}` is not a time (use 2026-11-01 or 2026-11-01T12:00:00Z)"
    ))
}

async fn init(dir: &Path, no_data: bool, events: u64) -> Result<()> {
    if dir.join("space.yaml").exists() {
        return Err(invalid(format!(
            "{} already holds a space (space.yaml exists); pick an empty folder",
            dir.display()
        )));
    }
    write_starter(dir)?;
    println!("Created a space in {}", dir.display());
    if !no_data {
        let out = objects::open_raw(dir, "data/events")?;
        let opts = GenerateOptions {
            events,
            ..Default::default()
        };
        let bar = progress::Bar::new(events, "generating sample events");
        let report = generate::generate(&opts, &out, &|n| bar.set(n)).await?;
        bar.finish();
        println!(
            "Wrote {} sample events to {}/data/events (ending {}).",
            report.events,
            dir.display(),
            opts.end.format("%Y-%m-%d")
        );
    }
    println!("\nNext:");
    print_path_hint();
    println!("  cohort validate {}", dir.display());
    println!(
        "  cohort run {} --as-of {}",
        dir.display(),
        GenerateOptions::default().end.format("%Y-%m-%d")
    );
    Ok(())
}

fn write_starter(dir: &Path) -> Result<()> {
    for (rel, contents) in spec::init_files() {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        output_file::write_file(&p, contents.as_bytes())?;
    }
    Ok(())
}

async fn validate(dir: &Path) -> Result<spec::Space> {
    let space = load_space(dir).await?;
    println!(
        "space `{}` is valid: {} source(s), {} computed trait(s), {} SQL trait(s), {} audience(s)",
        space.name,
        space.sources.len(),
        space.traits.len(),
        space.sql_traits.len(),
        space.audiences.len()
    );
    Ok(space)
}

/// Loads and checks a space, printing diagnostics (to stderr) only when there are any.
async fn load_space(dir: &Path) -> Result<spec::Space> {
    let v = analyze::validate_space(dir).await;
    if !v.diagnostics.is_empty() {
        eprintln!("{}", spec::render_all(&v.diagnostics, dir));
    }
    let (errors, warnings) = (v.errors(), v.warnings());
    match v.space {
        Some(space) => {
            if warnings > 0 {
                eprintln!("{warnings} warning(s)");
            }
            Ok(space)
        }
        None => {
            eprintln!(
                "{}: {errors} error(s), {warnings} warning(s)",
                dir.display()
            );
            Err(anyhow!(Invalid))
        }
    }
}

async fn compile_cmd(dir: &Path, dialect: &str, as_of: Option<&str>, script: bool) -> Result<()> {
    use crate::script::unparse::{SqlDialect, render_space};
    let Some(d) = SqlDialect::parse(dialect) else {
        let names: Vec<&str> = SqlDialect::ALL.iter().map(|d| d.as_str()).collect();
        return Err(invalid(format!(
            "unknown dialect `{dialect}`; use one of {}",
            names.join(", ")
        )));
    };
    let as_of = match as_of {
        Some(t) => parse_time(t).map_err(invalid)?,
        None => Utc::now(),
    };
    let space = load_space(dir).await?;
    if script {
        if !matches!(d, SqlDialect::DuckDb | SqlDialect::Postgres) {
            return Err(invalid(format!(
                "--script writes duckdb or postgres, not {}",
                d.as_str()
            )));
        }
        print!("{}", crate::run::script(&space, as_of, d).await?);
        return Ok(());
    }
    match render_space(&space, d, as_of.timestamp_micros()) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(e) => {
            eprint!("{}", e.0);
            Err(anyhow!(Invalid))
        }
    }
}

async fn generate_cmd(a: GenerateArgs) -> Result<()> {
    let preset = Preset::parse(&a.preset).ok_or_else(|| {
        invalid(format!(
            "unknown preset `{}` (use events, segment or rudderstack)",
            a.preset
        ))
    })?;
    let mut opts = GenerateOptions {
        preset,
        events: a.events,
        seed: a.seed,
        days: a.days,
        ..Default::default()
    };
    if let Some(end) = &a.end {
        opts.end = parse_time(end).map_err(invalid)?;
    }
    let cwd = std::env::current_dir()?;
    let out = objects::open_raw(&cwd, &a.out).map_err(invalid)?;
    let bar = progress::Bar::new(opts.events, "generating events");
    let report = generate::generate(&opts, &out, &|n| bar.set(n)).await?;
    bar.finish();
    let secs = report.elapsed.as_secs_f64();
    println!(
        "wrote {} events ({} users, {} duplicates, {} bad rows, {} late) in {} files, {:.1} MB, to {} in {:.1}s ({:.0} events/s)",
        report.events,
        report.users,
        report.duplicates,
        report.bad_rows,
        report.late,
        report.files,
        report.bytes as f64 / 1e6,
        out.url,
        secs,
        report.events as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn run_options(a: &RunArgs) -> Result<RunOptions> {
    let mut opts = RunOptions {
        window_days: a.window_days,
        lease_wait: Duration::from_secs(a.wait),
        full_rebuild: a.full,
        skip_bad_files: a.skip_bad_files,
        trigger: Some("manual: cli".into()),
        ..Default::default()
    };
    if let Some(t) = &a.as_of {
        opts.as_of = Some(parse_time(t).map_err(invalid)?);
    }
    if let Some(m) = &a.memory_limit {
        opts.session.memory_limit = Some(memory_limit(m)?);
    }
    opts.session.spill_dir = a.spill_dir.clone();
    if let Some(t) = &a.timeout {
        opts.timeout = Some(duration_arg("--timeout", t)?);
    }
    Ok(opts)
}

fn duration_arg(flag: &str, s: &str) -> Result<Duration> {
    spec::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid(format!(
                "{flag}: `{s}` is not a duration (try 30s, 10m, 2h or 7d)"
            ))
        })
}

fn memory_limit(s: &str) -> Result<usize> {
    spec::parse_memory_limit(s)
        .map(|b| b as usize)
        .ok_or_else(|| invalid(format!("`{s}` is not a size (try 4GB or 512MB)")))
}

async fn run_cmd(a: RunArgs) -> Result<()> {
    let mut opts = run_options(&a)?;
    opts.interrupt = Some(on_ctrl_c());
    let space = validate(&a.dir).await?;
    if opts.session.memory_limit.is_none()
        && let Some(m) = &space.memory_limit
    {
        opts.session.memory_limit = Some(memory_limit(m)?);
    }
    let report = run_space(&space, &opts).await?;
    print_summary(&report);
    Ok(())
}

/// Ctrl-C stops a run before it publishes (it records why and removes its scratch files); a
/// second Ctrl-C quits at once.
fn on_ctrl_c() -> std::sync::Arc<tokio::sync::Notify> {
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping the run (Ctrl-C again quits at once)");
            notify.notify_one();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}

async fn run_space(space: &spec::Space, opts: &RunOptions) -> Result<run::RunReport> {
    let p = progress::Stages::new();
    let report = run::run(space, opts, &p).await;
    p.finish();
    Ok(report?)
}

fn print_summary(r: &run::RunReport) {
    let rec = &r.record;
    println!(
        "run {} of `{}` as of {}: {} events from {} rows read ({} duplicates, {} bad, {} after as-of)",
        rec.run_id,
        rec.space,
        rec.as_of.format("%Y-%m-%d %H:%M:%S UTC"),
        rec.events,
        rec.rows_read,
        rec.duplicates,
        rec.bad_events,
        rec.after_as_of
    );
    for (k, v) in &rec.events_by_source_type {
        println!("  {k:<28} {v:>10}");
    }
    if !rec.errors_by_reason.is_empty() {
        println!("  set aside (see event_errors):");
        for (k, v) in &rec.errors_by_reason {
            println!("    {k:<26} {v:>10}");
        }
    }
    if !rec.skipped_files.is_empty() {
        println!(
            "  unreadable files set aside ({}):",
            rec.skipped_files.len()
        );
        for f in &rec.skipped_files {
            println!("    {}: {}", f.file, f.reason);
        }
    }
    if let Some(id) = &rec.identity {
        println!(
            "  identity ({}{}): {} identifiers, {} edges, {} rounds, {} profiles, {} merged, {} violations",
            id.mode,
            id.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            id.identifiers,
            id.edges,
            id.rounds,
            id.profiles,
            id.merges,
            id.violations
        );
        if let Some(big) = id.largest_components.first() {
            println!(
                "    largest component: {} identifiers (e.g. {}); {} components break a limit",
                big.identifiers, big.example, id.violating_components
            );
        }
    }
    if let Some(p) = &rec.profiles {
        println!(
            "  profiles: {} with {} custom, {} computed and {} SQL trait columns{}; accounts: {} with {} account traits",
            p.profiles,
            p.custom_traits.len(),
            p.computed_traits
                .keys()
                .filter(|k| !k.starts_with("accounts."))
                .count(),
            p.sql_traits.len(),
            if p.sql_trait_profiles > 0 {
                format!(" ({} profiles started by SQL traits)", p.sql_trait_profiles)
            } else {
                String::new()
            },
            p.accounts,
            p.account_traits.len()
                + p.computed_traits
                    .keys()
                    .filter(|k| k.starts_with("accounts."))
                    .count(),
        );
        if !p.skipped_traits.is_empty() {
            println!(
                "    trait keys left out (name taken or dotted): {}",
                p.skipped_traits.join(", ")
            );
        }
    }
    if let Some(a) = &rec.audiences {
        if !a.audiences.is_empty() {
            println!("  audiences:                            members    entered     exited");
        }
        for (k, c) in &a.audiences {
            let name = if c.entity == "accounts" {
                format!("{k} (accounts)")
            } else {
                k.clone()
            };
            println!(
                "    {name:<32} {:>10} {:>10} {:>10}",
                c.members, c.entered, c.exited
            );
        }
        for w in &a.warnings {
            println!("    warning: {w}");
        }
    }
    let timings: Vec<String> = rec
        .stage_timings
        .iter()
        .map(|(k, v)| format!("{k} {:.2}s", *v as f64 / 1000.0))
        .collect();
    println!("  stages: {}", timings.join(", "));
    println!("published to {}", r.output);
    for (t, v) in &r.manifest.tables {
        println!("  {t:<28} delta version {v}");
    }
    if let Some(v) = &r.vacuum {
        vacuum::print_after_run(v);
    }
}

async fn explain_identity(dir: &Path, identifier: &str) -> Result<()> {
    let Some((t, v)) = identifier.split_once(':') else {
        return Err(invalid(format!(
            "`{identifier}` is not `type:value` (e.g. `email:ada@example.com`)"
        )));
    };
    let space = load_space(dir).await?;
    let ex = match read::explain::explain_identity(&space, t, v).await {
        Ok(ex) => ex,
        Err(crate::error::EngineError::Invalid(m)) => return Err(invalid(m)),
        Err(e) => return Err(e.into()),
    };
    print!("{}", render_identity_explanation(&ex));
    Ok(())
}

/// The as-of time to evaluate at: `--as-of`, else the last published run's, else now.
async fn evaluation_time(space: &spec::Space, as_of: Option<&str>) -> Result<DateTime<Utc>> {
    if let Some(t) = as_of {
        return parse_time(t).map_err(invalid);
    }
    let out = read::output_location(space)?;
    Ok(crate::store::manifest::read(&out)
        .await?
        .and_then(|m| DateTime::parse_from_rfc3339(&m.as_of).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc)))
}

/// `cohort sync`: delivers what is due and prints one line per destination; exit 1 when a
/// destination stopped early.
async fn sync_cmd(dir: &Path, only: Vec<String>) -> Result<()> {
    use crate::serve::destinations::{SyncOptions, sync};
    let space = load_space(dir).await?;
    for name in &only {
        if !space.destinations.iter().any(|d| &d.name == name) {
            return Err(invalid(format!(
                "space `{}` has no destination `{name}`",
                space.name
            )));
        }
    }
    if space.destinations.is_empty() {
        println!("space `{}` has no destinations", space.name);
        return Ok(());
    }
    let opts = SyncOptions {
        only,
        ..Default::default()
    };
    let report = sync(&space, &opts).await?;
    let Some(run) = &report.run_id else {
        println!(
            "space `{}` has no published run yet: `cohort run` it first",
            space.name
        );
        return Ok(());
    };
    println!("synced up to run {run}");
    let mut failed = 0;
    for d in &report.destinations {
        println!(
            "{}: {} audience(s), {} planned, {} delivered, {} dead-lettered, {} request(s), {} \
             retried{}",
            d.name,
            d.audiences.len(),
            d.planned,
            d.delivered,
            d.dead_lettered,
            d.requests,
            d.retries,
            if d.resumed > 0 {
                format!(", {} interrupted outbox(es) resumed", d.resumed)
            } else {
                String::new()
            }
        );
        if let Some(e) = &d.error {
            eprintln!("error: destination `{}`: {e}", d.name);
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} destination(s) stopped early");
    }
    Ok(())
}

fn engine_error(e: crate::error::EngineError) -> anyhow::Error {
    match e {
        crate::error::EngineError::Invalid(m) => {
            eprint!("{m}");
            if !m.ends_with('\n') {
                eprintln!();
            }
            anyhow!(Invalid)
        }
        e => e.into(),
    }
}

async fn preview_cmd(dir: &Path, audience: &str, as_of: Option<&str>) -> Result<()> {
    let mut space = load_space(dir).await?;
    let file = Path::new(audience);
    let key = if audience.ends_with(".yaml") || file.is_file() {
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid(format!("cannot read {audience}: {e}")))?;
        let def = match spec::read_audience_text(file, &text) {
            Ok(d) => d,
            Err(diags) => {
                let base = file.parent().unwrap_or(Path::new("."));
                eprint!("{}", spec::render_all(&diags, base));
                return Err(anyhow!(Invalid));
            }
        };
        if let Err(d) = spec::parsed_audience(&def) {
            eprint!("{}", d.render(Path::new(".")));
            return Err(anyhow!(Invalid));
        }
        let key = def.key.clone();
        space = read::preview::with_audience(&space, def);
        key
    } else {
        audience.to_string()
    };
    let opts = RunOptions {
        as_of: Some(match as_of {
            Some(t) => parse_time(t).map_err(invalid)?,
            None => Utc::now(),
        }),
        ..Default::default()
    };
    let r = read::preview::preview(&space, &key, &opts)
        .await
        .map_err(engine_error)?;
    println!(
        "audience `{}` ({}) as of {}: {} of {} {} ({:.1}%)",
        r.key,
        r.entity,
        r.as_of,
        r.size,
        r.total,
        r.entity,
        if r.total == 0 {
            0.0
        } else {
            100.0 * r.size as f64 / r.total as f64
        }
    );
    println!("  each top-level condition on its own:");
    for (text, n) in &r.conditions {
        println!("    {n:>10}  {text}");
    }
    if !r.overlaps.is_empty() {
        println!("  overlap with the other audiences:");
        for o in &r.overlaps {
            println!(
                "    {:<28} {:>10} members, {:>10} in both",
                o.key, o.size, o.both
            );
        }
    }
    println!("  sample members:");
    for (id, ids) in &r.samples {
        println!("    {id}  {ids}");
    }
    println!("nothing was published");
    Ok(())
}

async fn export_cmd(a: ExportArgs) -> Result<()> {
    use crate::serve::export::{self, ExportError, ExportFormat, ExportOptions, Hash};
    let checked = |e: ExportError| match e {
        ExportError::Invalid(m) => invalid(m),
        e => e.into(),
    };
    let opts = ExportOptions {
        format: ExportFormat::parse(&a.format).map_err(checked)?,
        id_type: a.id_type.clone(),
        hash: a
            .hash
            .as_deref()
            .map(Hash::parse)
            .transpose()
            .map_err(checked)?,
    };
    let space = load_space(&a.dir).await?;
    let csv = export::open(&space, &a.audience, &opts)
        .await
        .map_err(checked)?;
    let summary = match &a.out {
        Some(path) => {
            // Written beside the target and renamed when complete: a failed export leaves
            // no half-written file and an older export at the path as it was.
            let mut file = output_file::OutputFile::create(path)?;
            match csv.write_to(&mut file).await {
                Ok(s) => {
                    file.commit()?;
                    s
                }
                Err(ExportError::Io(e)) => return Err(file.error(e)),
                Err(e) => return Err(file.error(e)),
            }
        }
        None => match csv.write_to(&mut std::io::stdout()).await {
            Ok(s) => s,
            // The reader went away (`| head`): what it wanted was written.
            Err(ExportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        },
    };
    eprintln!(
        "exported audience `{}` ({} format): {} members, {} rows, {} bytes{}",
        a.audience,
        a.format,
        summary.members,
        summary.rows,
        summary.bytes,
        a.out
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

async fn explain_audience(
    dir: &Path,
    key: &str,
    identifier: &str,
    as_of: Option<&str>,
) -> Result<()> {
    let Some((t, v)) = identifier.split_once(':') else {
        return Err(invalid(format!(
            "`{identifier}` is not `type:value` (e.g. `email:ada@example.com`)"
        )));
    };
    let space = load_space(dir).await?;
    let opts = RunOptions {
        as_of: Some(evaluation_time(&space, as_of).await?),
        ..Default::default()
    };
    let ex = read::preview::explain_audience(&space, key, t, v, &opts)
        .await
        .map_err(engine_error)?;
    println!(
        "{} {} is {} audience `{}` (as of {})",
        if ex.entity == "accounts" {
            "account"
        } else {
            "profile"
        },
        ex.id,
        if ex.member { "IN" } else { "NOT in" },
        ex.key,
        ex.as_of
    );
    for c in &ex.conditions {
        println!("  [{}] {}", if c.holds { "true " } else { "false" }, c.text);
        for (k, v) in &c.traits {
            println!("      trait('{k}') = {}", v.as_deref().unwrap_or("null"));
        }
        for (chain, evs) in &c.events {
            println!(
                "      {chain}: {} matching event(s){}",
                evs.len(),
                if evs.len() == 20 { " (newest 20)" } else { "" }
            );
            for (m, t) in evs {
                println!("        {t}  {m}");
            }
        }
    }
    Ok(())
}

/// The text `cohort explain identity` prints.
pub fn render_identity_explanation(ex: &read::explain::IdentityExplanation) -> String {
    use std::fmt::Write;
    let t = |d: &DateTime<Utc>| d.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} (run {}, as of {})",
        ex.identifier, ex.run_id, ex.as_of
    );
    match &ex.profile_id {
        Some(p) => {
            let _ = writeln!(s, "\nprofile {p}, {} identifiers:", ex.identifiers.len());
            for i in &ex.identifiers {
                let _ = writeln!(
                    s,
                    "  {:<14} {:<40} first seen {}  last seen {}",
                    i.id_type,
                    i.id_value,
                    t(&i.first_seen),
                    t(&i.last_seen)
                );
            }
            if ex.chain.is_empty() {
                let _ = writeln!(s, "\n{} is the profile's first identifier.", ex.identifier);
            } else {
                let _ = writeln!(s, "\nhow {} joined the profile:", ex.identifier);
                for l in &ex.chain {
                    let _ = writeln!(
                        s,
                        "  {}  event {}  linked {} -> {}",
                        t(&l.timestamp),
                        l.message_id,
                        l.from,
                        l.to
                    );
                }
            }
        }
        None if ex.violations.is_empty() => {
            let _ = writeln!(
                s,
                "\nno profile has this identifier and no event dropped it."
            );
        }
        None => {
            let _ = writeln!(
                s,
                "\nbelongs to no profile: it was blocked or dropped in every event that carried it."
            );
        }
    }
    if !ex.violations.is_empty() {
        let _ = writeln!(s, "\ndropped or blocked in these events:");
        for v in &ex.violations {
            let _ = writeln!(
                s,
                "  {}  event {}  rule {}: {}{}",
                t(&v.timestamp),
                v.message_id,
                v.rule,
                v.detail.as_deref().unwrap_or(""),
                v.profile_id
                    .as_ref()
                    .map(|p| format!(" (the event went to {p})"))
                    .unwrap_or_default()
            );
        }
    }
    s
}

/// The commands printed under "Next" / "Try next" start with `cohort`; when no `cohort` is on
/// the PATH (the usual case right after `cargo run --release -- demo`), say how to get one.
fn print_path_hint() {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("cohort").is_file()))
        .unwrap_or(false);
    if !on_path {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "target/release/cohort".into());
        println!(
            "  (`cohort` is not on your PATH: run `cargo install --path .` in the Cohort folder,"
        );
        println!("   or type `cargo run --release --` or {exe} in its place)");
    }
}

async fn demo(dir: &Path, events: u64, seed: u64) -> Result<()> {
    if !dir.join("space.yaml").exists() {
        write_starter(dir)?;
    }
    let data = dir.join("data").join("events");
    let opts = GenerateOptions {
        events,
        seed,
        ..Default::default()
    };
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    let out = objects::open_raw(dir, "data/events")?;
    let bar = progress::Bar::new(events, "generating events");
    let g = generate::generate(&opts, &out, &|n| bar.set(n)).await?;
    bar.finish();
    println!(
        "Generated {} events of an online store ({} users) in {:.1}s into {}",
        g.events,
        g.users,
        g.elapsed.as_secs_f64(),
        data.display()
    );
    let space = validate(dir).await?;
    let run_opts = RunOptions {
        as_of: Some(opts.end),
        ..Default::default()
    };
    let report = run_space(&space, &run_opts).await?;
    print_summary(&report);
    let d = dir.display();
    println!("\nTry next:");
    print_path_hint();
    println!("  cohort validate {d}");
    println!("  cohort run {d} --as-of {}", opts.end.format("%Y-%m-%d"));
    println!("  cohort generate --preset segment --events 100000 --out {d}/data/segment");
    println!(
        "  python3 -c \"import deltalake; print(deltalake.DeltaTable('{}/runs').to_pandas())\"",
        report.output.trim_start_matches("file://")
    );
    if !std::path::Path::new(&report.output.replace("file://", "")).exists() {
        bail!("the demo published nothing");
    }
    Ok(())
}
