//! The command line's shape: clap's commands, flags and their typed values. Every value is
//! parsed here (times, sizes, durations, dialects, presets, formats), so a bad one stops
//! clap with a message naming the flag (exit 2) before any command starts.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::script::unparse::SqlDialect;
use crate::serve::export::{ExportFormat, Hash};
use crate::serve::sql_auth::PasswordMethod;
use crate::spec::{self, Preset};

/// Cohort: profiles and audiences over the event tables in your data lake.
#[derive(Parser, Debug)]
#[command(name = "cohort", version, about, long_about = None)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
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
    Validate {
        /// The space folder [default: the current folder].
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Write realistic Segment-spec sample events as Parquet.
    Generate(GenerateArgs),
    /// Run every stage of a space and publish its tables atomically.
    Run(RunArgs),
    /// Explain a published result: why identifiers share a profile.
    #[command(subcommand)]
    Explain(ExplainCmd),
    /// Copy a development space's definitions into a production space: shows the diff,
    /// validates them against prod's sources, refuses audience keys prod retired.
    Promote {
        /// The development space folder (definitions are read from it).
        dev: PathBuf,
        /// The production space folder (its space.yaml, sources and output stay).
        prod: PathBuf,
        /// Write without asking.
        #[arg(long)]
        yes: bool,
        /// Show the diff and the checks only.
        #[arg(long, conflicts_with = "yes")]
        dry_run: bool,
        /// Also remove prod's definition files that dev does not have (left in place
        /// otherwise).
        #[arg(long)]
        delete: bool,
    },
    /// Repair the identity graph (entries of repairs.yaml), and see what the next run changes.
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Print each computed trait's logical plan and SQL, and the fused plan a run executes.
    Compile {
        /// The space folder [default: the current folder].
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// SQL dialect: datafusion, postgres, duckdb, bigquery or snowflake.
        #[arg(long, default_value = "datafusion", value_parser = named(parse_dialect))]
        dialect: SqlDialect,
        /// Measure windows from this time (RFC 3339 or YYYY-MM-DD); default: now.
        #[arg(long, value_parser = parse_time)]
        as_of: Option<DateTime<Utc>>,
        /// Write the whole space (events, identity, traits, profiles, audiences) as one
        /// runnable script for the dialect (duckdb, postgres, spark or databricks) instead; it
        /// reads the space's data once to plan it, as a run does.
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
        #[arg(long, value_parser = parse_time)]
        as_of: Option<DateTime<Utc>>,
    },
    /// Serve spaces: the scheduler, the Profile API and the Postgres-wire SQL endpoint.
    Serve(ServeArgs),
    /// Remove the files of old table versions: those no manifest within the retention window
    /// names (the current run's tables are always kept).
    Vacuum(VacuumArgs),
    /// List a space's run history: status, trigger, timings, audience changes.
    Runs {
        /// The space folder [default: the current folder].
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// How many runs to show, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Deliver audiences to their destinations now: every member on a first sync, then only
    /// the changes of runs published since (prints a summary per destination).
    Sync {
        /// The space folder [default: the current folder].
        #[arg(default_value = ".")]
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
pub(super) struct GenerateArgs {
    /// Table layout: events, segment or rudderstack.
    #[arg(long, default_value = "events", value_parser = named(parse_preset))]
    pub preset: Preset,
    /// Number of events (rows) to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days of history, ending at --end.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Last day of the data (exclusive), e.g. 2026-11-01.
    #[arg(long, value_parser = parse_time)]
    pub end: Option<DateTime<Utc>>,
    /// Where to write: a folder, file://... or s3://bucket/prefix.
    #[arg(long)]
    pub out: String,
}

#[derive(Args, Debug)]
pub(super) struct ExportArgs {
    /// The space folder.
    pub dir: PathBuf,
    /// The audience key.
    pub audience: String,
    /// unformatted (key, external_ids JSON), indexed (plus one column per identifier:
    /// email, email_1, ...) or single (one identifier type, one value per row).
    #[arg(long, value_parser = named(parse_export_format))]
    pub format: ExportFormat,
    /// single only: the identifier type to write (default email; group_id for accounts).
    #[arg(long)]
    pub id_type: Option<String>,
    /// single only: sha256 (the default) or none.
    #[arg(long, value_parser = named(parse_hash))]
    pub hash: Option<Hash>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(super) enum ExplainCmd {
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
        #[arg(long, value_parser = parse_time)]
        as_of: Option<DateTime<Utc>>,
    },
}

/// The arguments of a repair written by `cohort identity <kind>`.
#[derive(Args, Debug)]
pub(super) struct RepairArgs {
    /// The space folder.
    pub dir: PathBuf,
    /// The identifier, as `type:value` (e.g. `anonymous_id:kiosk-7`).
    pub identifier: String,
    /// Why: kept in repairs.yaml with the entry (required).
    #[arg(long)]
    pub reason: String,
}

#[derive(Subcommand, Debug)]
pub(super) enum IdentityCmd {
    /// Unlink an identifier: it links nothing, and keeps only the events that carry it alone.
    Unlink(RepairArgs),
    /// Split a profile at an identifier: it and the events that carry it become a profile of
    /// their own.
    Split(RepairArgs),
    /// Block an identifier in this space: it is never used.
    Block(RepairArgs),
    /// Merge two identifiers known to be one person.
    Merge {
        /// The space folder.
        dir: PathBuf,
        /// One identifier, as `type:value`.
        identifier: String,
        /// The other.
        other: String,
        /// Why: kept in repairs.yaml with the entry (required).
        #[arg(long)]
        reason: String,
    },
    /// What the next run would change in the identity graph (identifiers moved, profiles
    /// merged or split), against the last published run; nothing is published.
    Diff {
        /// The space folder [default: the current folder].
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Evaluate as of this time, as `cohort run --as-of` would; default: now.
        #[arg(long, value_parser = parse_time)]
        as_of: Option<DateTime<Utc>>,
    },
}

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// The space folder [default: the current folder].
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Evaluate every window against this time (RFC 3339 or YYYY-MM-DD); default: now.
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<DateTime<Utc>>,
    /// DataFusion memory limit (e.g. 4GB); operators spill to disk beyond it.
    #[arg(long, value_parser = parse_memory_limit)]
    pub memory_limit: Option<usize>,
    /// Folder for spill files (default: the OS temp dir).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Read only the last N days of events; older partitions are not opened.
    #[arg(long)]
    pub window_days: Option<u32>,
    /// Seconds to wait for another run of this space to finish.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Rebuild from the sources: read every source file again, rebuild the identity graph and
    /// evaluate every profile, instead of extending the previous run's event history and graph
    /// and evaluating only the profiles that can have changed.
    #[arg(long)]
    pub full: bool,
    /// Set aside source files that cannot be read (listed in the run record and
    /// `event_errors`) instead of failing the run.
    #[arg(long)]
    pub skip_bad_files: bool,
    /// Evaluate only these definitions (`trait:<key>`, `sql_trait:<key>`, `audience:<key>` or
    /// a bare key; comma-separated or repeated) and what they read; every other trait and
    /// audience of users keeps its values from the previous run.
    #[arg(long, value_name = "NAMES")]
    pub select: Vec<String>,
    /// Stop and fail the run when its stages take longer than this (e.g. 30m, 2h); the last
    /// good run stays published.
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Run the stages on another engine: `spark` compiles the space into its Spark SQL script
    /// (`cohort compile --dialect spark --script`), runs it with spark-submit or PySpark and
    /// publishes what Spark computed as this run (always a whole recompute).
    #[arg(long, value_name = "ENGINE", value_parser = ["spark"],
          conflicts_with_all = ["select", "window_days", "memory_limit", "spill_dir", "skip_bad_files", "timeout"])]
    pub on: Option<String>,
    /// With --on spark: the spark-submit to start (or a python with PySpark); default:
    /// spark-submit on the PATH, then $SPARK_HOME/bin/spark-submit, then python3 with pyspark.
    #[arg(long, value_name = "PATH", requires = "on")]
    pub spark_submit: Option<PathBuf>,
    /// With --on spark: the Spark master [default: local[*]].
    #[arg(long, value_name = "MASTER", requires = "on")]
    pub spark_master: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Space folders to serve (each fully isolated: its own output, token and runs)
    /// [default: the current folder].
    #[arg(default_value = ".")]
    pub dirs: Vec<PathBuf>,
    /// Address of the Profile API.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub api_addr: SocketAddr,
    /// Address of the Postgres-wire SQL endpoint.
    #[arg(long, default_value = "127.0.0.1:5433")]
    pub sql_addr: SocketAddr,
    /// A space's token as `space=token` (repeatable); default: $COHORT_TOKEN_<SPACE>, else a
    /// random token printed at start.
    #[arg(long = "token", value_name = "SPACE=TOKEN")]
    pub tokens: Vec<String>,
    /// Profile API requests per second per space (0: no limit).
    #[arg(long, default_value_t = 1000)]
    pub rate_limit: u32,
    /// Serve the published tables only: no scheduled runs.
    #[arg(long)]
    pub no_schedule: bool,
    /// Seconds between checks for runs published by another process (`cohort run`).
    #[arg(long, default_value_t = 5)]
    pub poll: u64,
    /// Scheduled runs set aside source files that cannot be read (listed in the run record
    /// and `event_errors`) instead of failing.
    #[arg(long)]
    pub skip_bad_files: bool,
    /// Address of the collector (Segment's HTTP Tracking API), which listens when a source
    /// has `write_keys` [default: 127.0.0.1:8089].
    #[arg(long)]
    pub collect_addr: Option<SocketAddr>,
    /// Collected events go to the lake (as Parquet) at the latest this many seconds after
    /// they arrive.
    #[arg(long, default_value_t = 60.0)]
    pub flush_interval: f64,
    /// ... or once this many megabytes of them are waiting.
    #[arg(long, default_value_t = 64)]
    pub flush_size: u64,
    /// Folder for the collector's write-ahead logs, `<DIR>/<space>/<source>` [default: each
    /// space's `.cohort/collector/<source>`].
    #[arg(long, value_name = "DIR")]
    pub collect_log: Option<PathBuf>,
    /// Each SQL connection's `statement_timeout` until it sets its own (e.g. 30s, 5m; 0s: none).
    #[arg(long, value_name = "DURATION", value_parser = parse_retain, default_value = "0s")]
    pub sql_statement_timeout: Duration,
    /// Memory one SQL query may hold (e.g. 512MB, 2GB); beyond it the query spills to disk
    /// where it can, else fails with SQLSTATE 53200.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory_limit, default_value = "2GB")]
    pub sql_memory_limit: usize,
    /// SQL queries of one space running at once; more wait for a place.
    #[arg(long, default_value_t = 4)]
    pub sql_max_queries: usize,
    /// Threads of each space's pool for its SQL queries (apart from the Profile API's and
    /// the other spaces') [default: one per core].
    #[arg(long)]
    pub sql_threads: Option<usize>,
    /// How SQL clients send their password (the space's token): `scram` (SCRAM-SHA-256, the
    /// token never crosses the wire) or `cleartext` (for clients without SCRAM; use TLS).
    #[arg(long, value_name = "METHOD", value_parser = parse_password_method, default_value = "scram")]
    pub sql_passwords: PasswordMethod,
    /// The SQL endpoint's TLS certificate chain (PEM) [default: a self-signed certificate
    /// for localhost, made at start].
    #[arg(long, value_name = "FILE", requires = "sql_tls_key")]
    pub sql_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--sql-tls-cert`.
    #[arg(long, value_name = "FILE", requires = "sql_tls_cert")]
    pub sql_tls_key: Option<PathBuf>,
    /// No TLS on the SQL endpoint (clients that require it are refused).
    #[arg(long, conflicts_with = "sql_tls_cert")]
    pub sql_no_tls: bool,
}

#[derive(Args, Debug)]
pub(super) struct VacuumArgs {
    /// The space folder [default: the current folder].
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Keep the table versions that manifests of this long ago named (e.g. 7d, 12h, 0s);
    /// default: the space's `retention`, else 7d. The current run's tables are always kept.
    #[arg(long, value_parser = parse_retain)]
    pub retain: Option<Duration>,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for a running run of this space to finish.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
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

/// `--memory-limit`: a size such as 4GB or 512MB, in bytes.
pub(super) fn parse_memory_limit(s: &str) -> Result<usize, String> {
    spec::parse_memory_limit(s)
        .map(|b| b as usize)
        .ok_or_else(|| format!("`{s}` is not a size (try 4GB or 512MB)"))
}

/// `--timeout`: a duration above zero.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    spec::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{s}` is not a duration (try 30s, 10m, 2h or 7d)"))
}

/// `--retain`: a duration; zero keeps only what the current manifest names.
fn parse_retain(s: &str) -> Result<Duration, String> {
    spec::parse_duration(s).ok_or_else(|| format!("`{s}` is not a duration (try 7d, 12h or 0s)"))
}

fn parse_password_method(s: &str) -> Result<PasswordMethod, String> {
    match s {
        "scram" | "scram-sha-256" => Ok(PasswordMethod::Scram),
        "cleartext" | "password" => Ok(PasswordMethod::Cleartext),
        _ => Err(format!("`{s}`: use scram or cleartext")),
    }
}

fn parse_dialect(s: &str) -> Result<SqlDialect, String> {
    SqlDialect::parse(s).ok_or_else(|| {
        let names: Vec<&str> = SqlDialect::ALL.iter().map(|d| d.as_str()).collect();
        format!("unknown dialect `{s}`; use one of {}", names.join(", "))
    })
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s)
        .ok_or_else(|| format!("unknown preset `{s}` (use events, segment or rudderstack)"))
}

fn parse_export_format(s: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(s).map_err(|e| e.to_string())
}

fn parse_hash(s: &str) -> Result<Hash, String> {
    Hash::parse(s).map_err(|e| e.to_string())
}

/// A [`ValueEnum`]'s parser that lists its values in `--help` and, for an unknown value,
/// says the type's own message (with its "did you mean").
#[derive(Clone)]
struct Named<E> {
    parse: fn(&str) -> Result<E, String>,
    of: PhantomData<E>,
}

fn named<E>(parse: fn(&str) -> Result<E, String>) -> Named<E> {
    Named {
        parse,
        of: PhantomData,
    }
}

impl<E: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for Named<E> {
    type Value = E;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<E, clap::Error> {
        self.parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            E::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

impl ValueEnum for SqlDialect {
    fn value_variants<'a>() -> &'a [Self] {
        &SqlDialect::ALL
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for Preset {
    fn value_variants<'a>() -> &'a [Self] {
        &Preset::ALL
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for ExportFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ExportFormat::Unformatted,
            ExportFormat::Indexed,
            ExportFormat::Single,
        ]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

impl ValueEnum for Hash {
    fn value_variants<'a>() -> &'a [Self] {
        &[Hash::Sha256, Hash::None]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Hash::Sha256 => "sha256",
            Hash::None => "none",
        }))
    }
}
